"""Evaluation prompts of the folder benchmarks (`video_folder`, `token_folder`): the prompt type,
the frames each task gives the sampler, and prompt files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REAL_TASKS = ("t2i", "i2v", "interpolation", "extrapolation")  # suites that need real clips


@dataclass(frozen=True)
class VideoPrompt:
    """An evaluation prompt; `key` names its real clip (None for a text-only prompt)."""

    caption: str
    task: str
    condition_frames: tuple[int, ...] = ()
    key: str | None = None


def condition_frames(task: str, frames: int) -> tuple[int, ...]:
    """The pixel frames of a `frames`-frame clip that `task` gives the sampler: none (t2v, t2i), the
    first (i2v), first and last (interpolation), the first half (extrapolation)."""
    return {
        "t2v": (),
        "t2i": (),
        "i2v": (0,),
        "interpolation": (0, frames - 1),
        "extrapolation": tuple(range(max(1, frames // 2))),
    }[task]


def read_prompts(path: Path) -> list[str]:
    """The captions of an eval prompt file: each row's "caption" of a .jsonl, else each non-empty
    line."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return (
        [json.loads(line)["caption"] for line in lines]
        if path.suffix.lower() == ".jsonl"
        else lines
    )
