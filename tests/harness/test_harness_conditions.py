"""Conditioned tasks encode their given frames on their own (harness.tasks,
Benchmark.condition_ids), on the release's Cosmos-3D VAE with the golden fixture's weights, whose
mid-block temporal attention mixes frames: a condition must not see the frames the task
generates."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from harness import tasks
from harness.data import Data
from harness.plugins import Benchmark
from harness.spec import SampleConfig
from ursa.tokenizers.cosmos3d import ReleaseVideoTokenizer

sys.path.insert(0, str(Path(__file__).parents[1] / "ursa"))
from test_release_helpers import load_golden, write_vae  # noqa: E402

GOLDEN = Path(__file__).parents[1] / "ursa" / "tokenizers" / "test_cosmos3d_golden.safetensors"
FRAMES = 9  # one window of the fixture's VAE: 3 latent frames


@dataclass(frozen=True)
class _Prompt:
    caption: str
    task: str
    condition_frames: tuple[int, ...]


class _Clips(Benchmark):
    """Fixed real clips uint8 (N, 9, 64, 64, 3)."""

    def __init__(self, clips: torch.Tensor) -> None:
        self.clips = clips

    def fingerprint(self) -> str:
        return "clips"

    def geometry(self) -> tuple[int, int, int]:
        return tuple(self.clips.shape[1:4])

    def training_set(self):
        raise NotImplementedError

    def suite(self, task: str):
        raise NotImplementedError

    def real_videos(self, prompts) -> torch.Tensor:
        return self.clips[: len(prompts)]


class _Recorder:
    """A sampler that returns its condition ids (B, T, h, w) and records them."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def sample(self, text_ids, text_mask, shape, *, condition_ids, condition_frames, **kwargs):
        self.calls.append((condition_ids, condition_frames))
        return condition_ids


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> ReleaseVideoTokenizer:
    config, weights, _ = load_golden(GOLDEN)
    return ReleaseVideoTokenizer(write_vae(tmp_path_factory.mktemp("release"), config, weights))


def _given(tokenizer, clips: torch.Tensor, task: str, cond: tuple[int, ...]) -> torch.Tensor:
    """The ids the task gives the sampler at its held latent frames: long (B, n_held, h, w)."""
    recorder = _Recorder()

    def text(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(len(captions), 2, dtype=torch.long), torch.ones(
            len(captions), 2, dtype=torch.bool
        )

    ctx = tasks.TaskContext(
        recorder,
        Data(_Clips(clips), tokenizer, text, "fp"),
        SampleConfig(),
        torch.Generator().manual_seed(0),
    )
    prompts = [_Prompt("a", task, cond), _Prompt("b", task, cond)]
    {
        "i2v": tasks.image_to_video,
        "interpolation": tasks.interpolation,
        "extrapolation": tasks.extrapolation,
    }[task](ctx, prompts)
    ids, held = recorder.calls[0]
    assert ids.shape[1] == 3 and held.all(0).tolist() == held.any(0).tolist()
    return ids[:, held[0]]


@pytest.mark.parametrize(
    "task, cond, changed, held",
    [
        ("i2v", (0,), [4, 8], [0]),
        ("interpolation", (0, FRAMES - 1), [3, 4, 5], [0, 2]),
        ("extrapolation", tuple(range(5)), [6, 7, 8], [0, 1]),  # 5 context frames: 2 latent frames
    ],
)
def test_condition_ids_do_not_see_the_frames_to_generate(tokenizer, task, cond, changed, held):
    clips = torch.randint(
        0,
        256,
        (2, FRAMES, 64, 64, 3),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(1),
    )
    other = clips.clone()
    other[:, changed] = 255 - other[:, changed]
    # the whole clip's ids at the held latent frames do change with these frames (the encoder mixes
    # frames), so cutting them from it, as before, would fail this test
    assert not torch.equal(tokenizer.encode(clips)[:, held], tokenizer.encode(other)[:, held])
    given = _given(tokenizer, clips, task, cond)
    assert torch.equal(given, _given(tokenizer, other, task, cond))
    # and they are the condition frames encoded on their own (the authors' encode_image / _video)
    if task == "i2v":
        assert torch.equal(given, tokenizer.encode(clips[:, :1]))
    elif task == "interpolation":
        ends = [tokenizer.encode(clips[:, :1]), tokenizer.encode(clips[:, -1:])]
        assert torch.equal(given, torch.cat(ends, 1))
    else:
        assert torch.equal(given, tokenizer.encode(clips[:, :5]))
