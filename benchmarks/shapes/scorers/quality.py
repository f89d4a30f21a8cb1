"""VBench-style quality dimensions, computed exactly from pixels and detections.

- temporal_flickering: VBench's formula, (255 - mean absolute difference of consecutive
  frames) / 255, averaged over frames and clips (VBench restricts it to static clips; here
  every clip counts, so moving content lowers it slightly even for real clips).
- subject_consistency: per detected object, the fraction of frames in which it is present with
  its clip-level shape (identity held over time), averaged over objects; 0 for clips with none.
- motion_smoothness: 1 - |c_f - (c_{f-1} + c_{f+1}) / 2| / side, the deviation of each object's
  centroid from the midpoint of its neighbours (VBench's frame-interpolation check, on tracks).
- dynamic_degree: fraction of clips with at least one detected moving object (VBench: fraction
  of videos judged dynamic).
- palette_fidelity: fraction of pixels within PALETTE_TOLERANCE of a palette colour.
- clean_fraction: fraction of pixels that are background or part of a detected object (stray
  coloured pixels are artefacts even when on-palette, as every decoded token is here).
"""

from __future__ import annotations

import numpy as np

from benchmarks.shapes.detect import Detections
from benchmarks.shapes.world import MOTIONS

QUALITY_METRICS: tuple[str, ...] = (
    "temporal_flickering",
    "subject_consistency",
    "motion_smoothness",
    "dynamic_degree",
    "palette_fidelity",
    "clean_fraction",
)


def score_quality(videos: np.ndarray, det: Detections) -> tuple[dict[str, float], list[dict]]:
    """Metrics (QUALITY_METRICS) and per-clip rows for uint8 (N, F, H, W, 3) clips and their detections."""
    n, f, h, w = videos.shape[:4]
    per_clip: dict[str, np.ndarray] = {}
    if f > 1:
        diff = np.abs(np.diff(videos.astype(np.int16), axis=1)).reshape(n, -1).mean(1)
        per_clip["temporal_flickering"] = (255.0 - diff) / 255.0
    else:
        per_clip["temporal_flickering"] = np.ones(n)
    held = (det.present & (det.shape == det.shape_of[..., None])).mean(2)  # (N, C)
    objects = np.maximum(det.exists.sum(1), 1)
    per_clip["subject_consistency"] = (
        np.where(det.exists, held, 0).sum(1) / objects * (det.exists.sum(1) > 0)
    )
    per_clip["motion_smoothness"] = _smoothness(det)
    moving = det.exists & (det.motion_of >= 0) & (det.motion_of != list(MOTIONS).index("still"))
    per_clip["dynamic_degree"] = moving.any(1).astype(np.float64)
    per_clip["palette_fidelity"] = det.on_palette
    object_pixels = (det.area * det.present).sum(1)  # (N, F)
    per_clip["clean_fraction"] = 1.0 - (det.foreground - object_pixels).sum(1) / (f * h * w)
    metrics = {k: float(np.mean(per_clip[k])) for k in QUALITY_METRICS}
    rows = [{k: float(per_clip[k][i]) for k in QUALITY_METRICS} for i in range(n)]
    return metrics, rows


def _smoothness(det: Detections) -> np.ndarray:
    """float (N,): mean over objects and interior frames with both neighbours present of
    1 - min(1, |c_f - (c_{f-1} + c_{f+1}) / 2| / side); 0 when no such triple exists."""
    c = det.centre  # (N, C, F, 2)
    if c.shape[2] < 3:
        return np.ones(c.shape[0])
    triple = det.present[..., :-2] & det.present[..., 1:-1] & det.present[..., 2:]  # (N, C, F-2)
    err = np.linalg.norm(c[..., 1:-1, :] - (c[..., :-2, :] + c[..., 2:, :]) / 2, axis=-1)
    side = np.maximum(det.side[..., 1:-1], 1)
    score = np.where(triple, 1 - np.minimum(np.nan_to_num(err, nan=1e9) / side, 1), 0)
    count = triple.sum((1, 2))
    return np.where(count > 0, score.sum((1, 2)) / np.maximum(count, 1), 0.0)
