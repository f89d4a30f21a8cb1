"""score(): every shapes-benchmark scorer on a batch of generated clips, one report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.shapes.detect import detect
from benchmarks.shapes.prompts import Prompt, check_prompts, real_videos, replace_positions
from benchmarks.shapes.scorers.alignment import score_alignment
from benchmarks.shapes.scorers.extractor import load_or_train_extractor
from benchmarks.shapes.scorers.quality import score_quality
from benchmarks.shapes.scorers.tasks import score_tasks
from ursa.tensor_checks import check_tensor

SCORERS: tuple[str, ...] = ("alignment", "quality", "fidelity", "tasks")


@dataclass
class ScoreReport:
    """metrics: name -> value over the whole batch; rows: one dict per clip (index, caption,
    task and that clip's per-sample values)."""

    metrics: dict[str, float] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)


def check_videos(videos: torch.Tensor, prompts: list[Prompt]) -> None:
    """ValueError unless `videos` is uint8 (len(prompts), F, H, W, 3) matching the prompts' geometry."""
    cfg = prompts[0].cfg
    want = (len(prompts), cfg.frames, cfg.height, cfg.width, 3)
    check_tensor("videos", videos, torch.uint8, want)


def heldout_reference(prompts: list[Prompt], seed: int) -> torch.Tensor:
    """uint8 (N, F, H, W, 3): real clips of the same captions at freshly sampled positions,
    the reference distribution for fidelity (so even the real generator has a nonzero FID)."""
    rng = np.random.default_rng([seed, 0x5EED])
    return real_videos([replace_positions(p, rng) for p in prompts])


def score(
    videos: torch.Tensor,
    prompts: list[Prompt],
    which: tuple[str, ...] = SCORERS,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> ScoreReport:
    """Score uint8 (N, F, H, W, 3) clips generated for `prompts` (clip n for prompt n).

    `which` selects scorers from SCORERS; "tasks" adds the metrics of the prompts' task (none
    for plain t2v / t2i). Fidelity trains or loads the feature extractor from `cache_dir`."""
    check_prompts(prompts)
    unknown = [w for w in which if w not in SCORERS]
    if isinstance(which, str) or unknown or not which:
        raise ValueError(f"which: expected a non-empty tuple from {SCORERS}, got {which!r}")
    check_videos(videos, prompts)
    if len({p.task for p in prompts}) != 1:
        raise ValueError(
            f"prompts: expected one task per batch, got {sorted({p.task for p in prompts})}"
        )
    cfg = prompts[0].cfg
    array = videos.numpy()
    det = detect(array, cfg)
    rows = [{"index": i, "caption": p.caption, "task": p.task} for i, p in enumerate(prompts)]
    metrics: dict[str, float] = {}
    parts = []
    if "alignment" in which:
        parts.append(score_alignment(det, prompts))
    if "quality" in which:
        parts.append(score_quality(array, det))
    if "tasks" in which:
        parts.append(score_tasks(array, real_videos(prompts).numpy(), det, prompts))
    for m, r in parts:
        metrics.update(m)
        for row, extra in zip(rows, r):
            row.update(extra)
    if "fidelity" in which:
        # imported here: torch-fidelity pulls in torchvision and torch._dynamo (seconds), which every
        # `import benchmarks.shapes...` (spec validation, a rerun that computes nothing) would otherwise pay
        from benchmarks.shapes.scorers.fidelity import score_fidelity

        _, weights = load_or_train_extractor(cache_dir, cfg, progress=progress)
        metrics.update(score_fidelity(videos, heldout_reference(prompts, seed), weights, seed))
    return ScoreReport(metrics, rows)
