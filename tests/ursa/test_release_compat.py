"""The sampler's compat flags for the authors' bugs (docs/release.md): each changes exactly what
their pipeline does differently, on a tiny synthetic release; off by default (the fixed sampler)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from ursa.paths import MixturePath
from ursa.release import build_release_path, load_transformer
from ursa.sample import EulerSampler, SamplerConfig, image_to_video

sys.path.insert(0, str(Path(__file__).parent))
from test_release_helpers import make_release  # noqa: E402

SHAPE = (3, 2, 2)  # latent (T, h, w); frame 0 given in i2v


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = make_release(tmp_path_factory.mktemp("rel") / "URSA")
    return load_transformer(root), build_release_path(root)


def i2v(model, path, **config) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(ids (2, T, h, w), the given first frame (2, h, w), the visual ids of every model call)."""
    seen: list[torch.Tensor] = []
    hook = model.register_forward_pre_hook(lambda _, args: seen.append(args[1][:2].clone()))
    try:
        first = torch.randint(27, (2, *SHAPE[1:]), generator=torch.Generator().manual_seed(1))
        text = torch.randint(0, 30, (2, 4), generator=torch.Generator().manual_seed(2))
        mask = torch.ones(2, 4, dtype=torch.bool)
        out = image_to_video(
            EulerSampler(model, path, SamplerConfig(steps=8, **config)),
            text,
            mask,
            first,
            SHAPE[0],
            generator=torch.Generator().manual_seed(0),
        )
    finally:
        hook.remove()
    return out, first, seen


def test_condition_drift_bug_2(release) -> None:
    model, path = release
    held, first, seen = i2v(model, path)
    assert all(torch.equal(x[:, 0], first) for x in seen) and torch.equal(held[:, 0], first)
    drift, first, seen = i2v(model, path, compat_condition_drift=True)
    assert torch.equal(
        seen[0][:, 0], first
    )  # written into the start, as their prepare_latents does
    assert not all(torch.equal(x[:, 0], first) for x in seen[1:])  # then it jumps like any token
    assert (drift[:, 0] != first).any()
    assert not torch.equal(drift[:, 1:], held[:, 1:])


def test_still_first_step_bug_6(release) -> None:
    model, path = release
    _, _, fixed = i2v(model, path)
    assert not torch.equal(fixed[1], fixed[0])  # the project's first step moves tokens
    _, _, still = i2v(model, path, compat_still_first_step=True)
    assert len(still) == len(fixed) - 1  # their model call at t = 0 is wasted; skipped here
    mix = MixturePath(27)  # their mixture path has a rate at t = 0: unaffected
    assert torch.equal(i2v(model, mix, compat_still_first_step=True)[0], i2v(model, mix)[0])
    # the first step left the noise as it was: the first model call of the flagged run sees the start
    # of the fixed run (same seed, same initial noise)
    assert torch.equal(still[0], fixed[0])
