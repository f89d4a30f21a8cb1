"""Reference generators: the floor and ceiling of every metric, usable wherever a model is.

- real: each prompt's real clip (ceiling);
- reconstruction: the real clip through the tokenizer (the tokenizer's limit);
- static: the real clip's first frame repeated (no motion), a degenerate sample the headline
  alignment must not reward;
- memoriser: for each prompt the training clip whose caption is nearest (`caption_distance`:
  right colour, then size and motion, a shape seen in training), the degenerate sample of a
  model that memorised its training set instead of composing attributes;
- shuffled: the real clip of another prompt (a fixed-point-free permutation), so content is
  perfect but unrelated to the caption (semantic floor);
- random: uniform random tokens decoded (floor of everything).
For conditioned tasks the condition frames are taken from the prompt's real clip (at token
level for random), as a sampler holding them fixed would.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from benchmarks.shapes.prompts import Prompt, check_prompts, real_videos
from benchmarks.shapes.world import ObjectSpec, Spec, WorldConfig, place, render
from ursa.tokenizers.base import VisualTokenizer

GENERATORS: tuple[str, ...] = (
    "real",
    "reconstruction",
    "static",
    "memoriser",
    "shuffled",
    "random",
)
# Cost of each attribute an object of the nearest training caption gets wrong: the colour (the
# entity the questions hang on) costs most, the shape least, so the memoriser keeps the colour,
# size and motion and swaps the held-out shape for one seen in training.
MISMATCH_COST = {"colour": 8, "size": 2, "motion": 2, "shape": 1}
COUNT_COST = 100  # per object more or fewer than the prompt states


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of range(n) with no fixed point (n >= 2), by rejection."""
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def caption_distance(a: Spec, b: Spec) -> int:
    """Attribute mismatches between two captions, weighted by MISMATCH_COST, under the best
    pairing of their objects (COUNT_COST per object one has more than the other)."""
    if len(a) > len(b):
        a, b = b, a
    cost = min(
        sum(
            MISMATCH_COST[f] * (getattr(x, f) != getattr(y, f))
            for x, y in zip(a, perm)
            for f in MISMATCH_COST
        )
        for perm in itertools.permutations(b, len(a))
    )
    return cost + COUNT_COST * (len(b) - len(a))


def nearest_training(
    prompts: list[Prompt], train: list[Prompt], rng: np.random.Generator
) -> list[Prompt]:
    """For each prompt, a training prompt of least `caption_distance` (ties drawn with `rng`).
    Motion is compared only where the prompt states one (a t2i prompt matches any motion)."""
    by_spec: dict[Spec, list[int]] = {}
    for i, t in enumerate(train):
        by_spec.setdefault(t.spec, []).append(i)
    specs = list(by_spec)
    unmoving = [tuple(ObjectSpec(o.colour, o.shape, o.size, None) for o in s) for s in specs]
    out = []
    for p in prompts:
        still_image = all(o.motion is None for o in p.spec)
        dist = np.array([caption_distance(p.spec, s) for s in (unmoving if still_image else specs)])
        ties = [i for k in np.flatnonzero(dist == dist.min()) for i in by_spec[specs[k]]]
        out.append(train[ties[int(rng.integers(len(ties)))]])
    return out


def memorised_videos(
    prompts: list[Prompt], train: list[Prompt], rng: np.random.Generator
) -> torch.Tensor:
    """uint8 (N, F, H, W, 3): each prompt's nearest training clip. A suite of another geometry
    (t2i's single frames, long's windows) gets the training scene re-placed in its own geometry."""
    clips = []
    for p, t in zip(prompts, nearest_training(prompts, train, rng)):
        if t.cfg == p.cfg:
            clips.append(t.real())
            continue
        clips.append(render(place(t.spec, rng, p.cfg), p.cfg))
    return torch.from_numpy(np.stack(clips))


def generate_reference(
    name: str,
    prompts: list[Prompt],
    tokenizer: VisualTokenizer | None = None,
    cfg: WorldConfig | None = None,
    seed: int = 0,
    train: list[Prompt] | None = None,
) -> torch.Tensor:
    """uint8 (N, F, H, W, 3) clips of reference generator `name` (one of GENERATORS) for `prompts`.

    `tokenizer` is needed by reconstruction and random, `train` (the training prompts) by
    memoriser; `cfg`, if given, is checked against the prompts' frame size."""
    if name not in GENERATORS:
        raise ValueError(f"generator: expected one of {GENERATORS}, got {name!r}")
    check_prompts(prompts)
    pcfg = prompts[0].cfg
    if cfg is not None and (cfg.height, cfg.width) != (pcfg.height, pcfg.width):
        raise ValueError(
            f"cfg: expected frame size {pcfg.height}x{pcfg.width} of the prompts, got {cfg.height}x{cfg.width}"
        )
    if name in ("reconstruction", "random") and tokenizer is None:
        raise ValueError(f"tokenizer: generator {name!r} needs a VisualTokenizer, got None")
    if name == "memoriser" and not train:
        raise ValueError("train: generator 'memoriser' needs the training prompts, got none")
    rng = np.random.default_rng([seed, GENERATORS.index(name)])
    real = real_videos(prompts)
    cond = torch.zeros(real.shape[:2], dtype=torch.bool)  # (N, F) frames held from the real clip
    for i, p in enumerate(prompts):
        cond[i, list(p.condition_frames)] = True
    if name == "real":
        return real
    if name == "reconstruction":
        return tokenizer.decode(tokenizer.encode(real))
    if name in ("static", "memoriser"):
        out = (
            real[:, :1].expand_as(real)
            if name == "static"
            else memorised_videos(prompts, train, rng)
        )
        return torch.where(cond[..., None, None, None], real, out).contiguous()
    if name == "shuffled":
        if len(prompts) < 2:
            raise ValueError(
                f"prompts: generator 'shuffled' needs >= 2 prompts, got {len(prompts)}"
            )
        out = real[torch.from_numpy(_derangement(len(prompts), rng))]
        return torch.where(cond[..., None, None, None], real, out)
    real_ids = tokenizer.encode(real)  # (N, T, h, w)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    ids = torch.randint(tokenizer.vocab_size, real_ids.shape, generator=gen)
    held = latent_condition(cond, real_ids.shape[1])
    return tokenizer.decode(torch.where(held[..., None, None], real_ids, ids))


def latent_condition(cond: torch.Tensor, num_latent: int) -> torch.Tensor:
    """bool (N, T): latent frames that hold a condition pixel frame of `cond` bool (N, F).

    T = F: the same frames. Otherwise the tokenizer compresses time: causally (F = 1 + c (T - 1):
    latent 0 is pixel 0 alone, latent j >= 1 pixels c (j - 1) + 1 .. c j, as Cosmos) or in equal
    groups (F = c T)."""
    n, frames = cond.shape
    if num_latent == frames:
        return cond
    p = torch.arange(frames)
    if num_latent > 1 and (frames - 1) % (num_latent - 1) == 0:
        index = torch.where(p == 0, 0, 1 + (p - 1) * (num_latent - 1) // (frames - 1))
    else:
        index = p * num_latent // frames
    held = torch.zeros(n, num_latent, dtype=torch.bool)
    return held.index_put_(
        (torch.arange(n)[:, None].expand(n, frames)[cond], index.expand(n, frames)[cond]),
        torch.tensor(True),
    )
