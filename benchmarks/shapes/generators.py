"""Reference generators: the floor and ceiling of every metric, usable wherever a model is.

- real: each prompt's real clip (ceiling);
- reconstruction: the real clip through the tokenizer (the tokenizer's limit);
- shuffled: the real clip of another prompt (a fixed-point-free permutation), so content is
  perfect but unrelated to the caption (semantic floor);
- random: uniform random tokens decoded (floor of everything).
For conditioned tasks the condition frames are taken from the prompt's real clip (at token
level for random), as a sampler holding them fixed would.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.shapes.prompts import Prompt, check_prompts, real_videos
from benchmarks.shapes.world import WorldConfig
from ursa.tokenizers.base import VisualTokenizer

GENERATORS: tuple[str, ...] = ("real", "reconstruction", "shuffled", "random")


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of range(n) with no fixed point (n >= 2), by rejection."""
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def generate_reference(name: str, prompts: list[Prompt], tokenizer: VisualTokenizer | None = None,
                       cfg: WorldConfig | None = None, seed: int = 0) -> torch.Tensor:
    """uint8 (N, F, H, W, 3) clips of reference generator `name` (one of GENERATORS) for `prompts`.

    `tokenizer` is needed by reconstruction and random; `cfg`, if given, is checked against the
    prompts' frame size."""
    if name not in GENERATORS:
        raise ValueError(f"generator: expected one of {GENERATORS}, got {name!r}")
    check_prompts(prompts)
    pcfg = prompts[0].cfg
    if cfg is not None and (cfg.height, cfg.width) != (pcfg.height, pcfg.width):
        raise ValueError(f"cfg: expected frame size {pcfg.height}x{pcfg.width} of the prompts, got {cfg.height}x{cfg.width}")
    if name in ("reconstruction", "random") and tokenizer is None:
        raise ValueError(f"tokenizer: generator {name!r} needs a VisualTokenizer, got None")
    rng = np.random.default_rng([seed, GENERATORS.index(name)])
    real = real_videos(prompts)
    cond = torch.zeros(real.shape[:2], dtype=torch.bool)  # (N, F) frames held from the real clip
    for i, p in enumerate(prompts):
        cond[i, list(p.condition_frames)] = True
    if name == "real":
        return real
    if name == "reconstruction":
        return tokenizer.decode(tokenizer.encode(real))
    if name == "shuffled":
        if len(prompts) < 2:
            raise ValueError(f"prompts: generator 'shuffled' needs >= 2 prompts, got {len(prompts)}")
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
    return held.index_put_((torch.arange(n)[:, None].expand(n, frames)[cond], index.expand(n, frames)[cond]),
                           torch.tensor(True))
