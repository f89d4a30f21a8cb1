"""Prompt suites of the shapes benchmark.

Compositional split: a few (colour, shape) pairs are HELD_OUT. Training prompts never contain
them; every eval prompt contains at least one, so eval measures generalisation to attribute
combinations never seen in training. Task suites (i2v, interpolation, extrapolation, long)
draw from the eval distribution and name the frames a sampler must hold fixed.

Eval suites are a balanced design, not i.i.d. draws: the object count is drawn as the world
draws it, then the caption cycles through a shuffled list of every held-out caption with that
many objects (a fresh shuffle per pass), so n prompts cover each caption n / L times, +-1 (L = 30
moving one-object captions: 3 held-out pairs x 2 sizes x 5 motions). I.i.d. draws left a third
of the captions out and made half the prompts "staying still" (32 prompts, 22 captions). Object
counts whose caption list exceeds ENUMERATE_MAX (3+ objects) are drawn i.i.d. as before.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from benchmarks.shapes.world import (
    COLOUR_NAMES,
    MOTIONS,
    SHAPES,
    SIZES,
    ObjectSpec,
    Scene,
    Spec,
    WorldConfig,
    caption,
    place,
    render,
    sample_spec,
)

HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("red", "triangle"), ("green", "square"), ("blue", "circle")}
)
SUITES: tuple[str, ...] = ("train", "eval", "i2v", "interpolation", "extrapolation", "long", "t2i")
LONG_WINDOWS = 3
_SUITE_SALT = {name: k for k, name in enumerate(SUITES)}  # distinct streams per suite for one seed
ENUMERATE_MAX = (
    20_000  # largest caption list (per object count) the balanced eval design enumerates
)


@dataclass(frozen=True)
class Prompt:
    """One benchmark prompt: caption, its attribute spec, a placed scene, the task and its
    condition frames (frame indices a sampler holds fixed), and the clip geometry `cfg`."""

    caption: str
    spec: Spec
    scene: Scene
    task: str  # "t2v" | "t2i" | "i2v" | "interpolation" | "extrapolation" | "long"
    cfg: WorldConfig
    condition_frames: tuple[int, ...] = ()
    num_windows: int = 1

    def real(self) -> np.ndarray:
        """The prompt's real clip, uint8 (F, H, W, 3); deterministic."""
        return render(self.scene, self.cfg)


def is_held_out(spec: Spec) -> bool:
    return any((o.colour, o.shape) in HELD_OUT for o in spec)


def _train_spec(rng: np.random.Generator, cfg: WorldConfig) -> Spec:
    """Rejection-sample a training spec: one without HELD_OUT pairs."""
    while True:
        spec = sample_spec(rng, cfg)
        if not is_held_out(spec):
            return spec


@functools.lru_cache(maxsize=16)
def held_out_specs(k: int, motion: bool) -> tuple[Spec, ...] | None:
    """Every held-out spec of `k` objects (colours in COLOUR_NAMES order), or None when there
    are more than ENUMERATE_MAX specs of k objects to filter."""
    objects = [
        (shape, size, m)
        for shape in SHAPES
        for size in SIZES
        for m in (list(MOTIONS) if motion else [None])
    ]
    if math.comb(len(COLOUR_NAMES), k) * len(objects) ** k > ENUMERATE_MAX:
        return None
    specs = []
    for colours in itertools.combinations(COLOUR_NAMES, k):
        for attrs in itertools.product(objects, repeat=k):
            spec = tuple(
                ObjectSpec(c, shape, size, m) for c, (shape, size, m) in zip(colours, attrs)
            )
            if is_held_out(spec):
                specs.append(spec)
    return tuple(specs)


class _BalancedEval:
    """Draws eval specs: the object count as the world draws it, then the next caption of a
    shuffled cycle through every held-out caption with that count (object order shuffled, as
    sample_spec orders objects by a random colour permutation)."""

    def __init__(self, rng: np.random.Generator, cfg: WorldConfig, motion: bool) -> None:
        self.rng, self.cfg, self.motion = rng, cfg, motion
        self.queues: dict[int, list[Spec]] = {}

    def draw(self) -> Spec:
        k = int(self.rng.integers(self.cfg.min_objects, self.cfg.max_objects + 1))
        every = held_out_specs(k, self.motion)
        if every is None:
            while True:  # too many captions to cycle through: i.i.d. draws of k objects
                spec = sample_spec(
                    self.rng, replace(self.cfg, min_objects=k, max_objects=k), motion=self.motion
                )
                if is_held_out(spec):
                    return spec
        queue = self.queues.setdefault(k, [])
        if not queue:
            queue.extend(every[i] for i in self.rng.permutation(len(every)))
        spec = queue.pop()
        return tuple(spec[i] for i in self.rng.permutation(k))


def suite_config(name: str, cfg: WorldConfig) -> WorldConfig:
    """Clip geometry of a suite: single frames for t2i; LONG_WINDOWS x frames at a speed that
    keeps the whole trajectory in frame for long; `cfg` otherwise."""
    if name == "t2i":
        return replace(cfg, frames=1)
    if name == "long":
        return replace(cfg, frames=cfg.frames * LONG_WINDOWS, speed=cfg.speed / LONG_WINDOWS)
    return cfg


def load_suite(name: str, n: int, seed: int = 0, cfg: WorldConfig | None = None) -> list[Prompt]:
    """`n` prompts of suite `name` (one of SUITES), deterministic in (name, n, seed, cfg)."""
    if name not in SUITES:
        raise ValueError(f"suite: expected one of {SUITES}, got {name!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    cfg = cfg or WorldConfig()
    scfg = suite_config(name, cfg)
    rng = np.random.default_rng([seed, _SUITE_SALT[name]])
    f = scfg.frames
    task, cond, windows = {
        "train": ("t2v", (), 1),
        "eval": ("t2v", (), 1),
        "t2i": ("t2i", (), 1),
        "i2v": ("i2v", (0,), 1),
        "interpolation": ("interpolation", (0, f - 1), 1),
        "extrapolation": ("extrapolation", tuple(range(f // 2)), 1),
        "long": ("long", (), LONG_WINDOWS),
    }[name]
    balanced = None if name == "train" else _BalancedEval(rng, scfg, motion=name != "t2i")
    prompts = []
    for _ in range(n):
        spec = _train_spec(rng, scfg) if balanced is None else balanced.draw()
        scene = place(spec, rng, scfg)
        prompts.append(Prompt(caption(spec), spec, scene, task, scfg, cond, windows))
    return prompts


def replace_positions(prompt: Prompt, rng: np.random.Generator) -> Prompt:
    """The same caption with freshly sampled positions: a held-out real clip of the prompt."""
    return replace(prompt, scene=place(prompt.spec, rng, prompt.cfg))


def real_videos(prompts: list[Prompt]) -> torch.Tensor:
    """uint8 (N, F, H, W, 3): the real clips of `prompts` (which must share one geometry)."""
    check_prompts(prompts)
    return torch.from_numpy(np.stack([p.real() for p in prompts]))


def check_prompts(prompts: list[Prompt]) -> None:
    """ValueError unless `prompts` is a non-empty list of Prompt sharing one clip geometry."""
    if (
        not isinstance(prompts, (list, tuple))
        or not prompts
        or not all(isinstance(p, Prompt) for p in prompts)
    ):
        raise ValueError(
            f"prompts: expected a non-empty list of Prompt, got {type(prompts).__name__}"
        )
    cfgs = {p.cfg for p in prompts}
    if len(cfgs) != 1:
        raise ValueError(
            f"prompts: expected one shared WorldConfig, got {len(cfgs)} different ones"
        )


def make_training_set(
    world_cfg: WorldConfig | None, n: int, seed: int = 0
) -> tuple[list[str], torch.Tensor]:
    """(captions list[str] of length n, videos uint8 (n, F, H, W, 3)) from the train suite."""
    prompts = load_suite("train", n, seed, world_cfg)
    return [p.caption for p in prompts], real_videos(prompts)
