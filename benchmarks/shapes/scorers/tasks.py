"""Task metrics for conditioned generation (the paper's I2V, interpolation, extrapolation and
long-video settings), computed against each prompt's real clip and exact detections.

- first_frame_fidelity (i2v): fraction of frame-0 pixels whose palette label equals the real
  condition frame's.
- identity_persistence (i2v, interpolation): per object of the real scene, fraction of frames in
  which an object of its colour is present with its shape and size class.
- endpoint_match (interpolation): pixel label agreement with the real first and last frames.
- continuation_consistency (extrapolation): per object, whether the generated continuation
  (from the last condition frame on) shows it present with its shape and its captioned motion.
- long_alignment_first / _last and long_drift = first - last (long): alignment of the first and
  last window, each scored as a clip of its own; positive drift means degradation over time.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from benchmarks.shapes.detect import Detections, detect
from benchmarks.shapes.prompts import Prompt
from benchmarks.shapes.scorers.alignment import score_alignment
from benchmarks.shapes.world import COLOUR_NAMES, MOTIONS, SHAPES, SIZES, palette_labels


def _label_agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float (N,): fraction of pixels with equal palette labels in uint8 (N, H, W, 3) frames."""
    return (palette_labels(a)[0] == palette_labels(b)[0]).reshape(len(a), -1).mean(1)


def _identity(det: Detections, prompts: list[Prompt], frames: slice = slice(None)) -> np.ndarray:
    """float (N,): mean over each prompt's objects of the fraction of `frames` holding its identity."""
    out = np.zeros(len(prompts))
    for n, p in enumerate(prompts):
        held = []
        for o in p.spec:
            c = COLOUR_NAMES.index(o.colour)
            big = det.side[n, c, frames] >= sum(SIZES.values()) / len(SIZES)
            ok = det.present[n, c, frames] & (det.shape[n, c, frames] == SHAPES.index(o.shape))
            held.append(float(np.mean(ok & (big == (o.size == "large")))))
        out[n] = np.mean(held)
    return out


def score_tasks(
    videos: np.ndarray, real: np.ndarray, det: Detections, prompts: list[Prompt]
) -> tuple[dict[str, float], list[dict]]:
    """Task metrics for uint8 (N, F, H, W, 3) `videos` vs `real` clips; rows carry per-clip values."""
    task = prompts[0].task
    cfg = prompts[0].cfg
    per: dict[str, np.ndarray] = {}
    if task == "i2v":
        per["first_frame_fidelity"] = _label_agreement(videos[:, 0], real[:, 0])
        per["identity_persistence"] = _identity(det, prompts)
    elif task == "interpolation":
        per["endpoint_match"] = (
            _label_agreement(videos[:, 0], real[:, 0])
            + _label_agreement(videos[:, -1], real[:, -1])
        ) / 2
        per["identity_persistence"] = _identity(det, prompts)
    elif task == "extrapolation":
        k = len(prompts[0].condition_frames)
        tail = detect(videos[:, k - 1 :], replace(cfg, frames=cfg.frames - k + 1))
        per["continuation_consistency"] = np.array(
            [
                np.mean(
                    [
                        bool(tail.exists[n, c := COLOUR_NAMES.index(o.colour)])
                        and tail.shape_of[n, c] == SHAPES.index(o.shape)
                        and tail.motion_of[n, c] == list(MOTIONS).index(o.motion)
                        for o in p.spec
                    ]
                )
                for n, p in enumerate(prompts)
            ]
        )
    elif task == "long":
        w = cfg.frames // prompts[0].num_windows
        wcfg = replace(cfg, frames=w)
        windows = [replace(p, cfg=wcfg) for p in prompts]
        first = score_alignment(detect(videos[:, :w], wcfg), windows)[1]
        last = score_alignment(detect(videos[:, -w:], wcfg), windows)[1]
        per["long_alignment_first"] = np.array([r["alignment"] for r in first])
        per["long_alignment_last"] = np.array([r["alignment"] for r in last])
        per["long_drift"] = per["long_alignment_first"] - per["long_alignment_last"]
    metrics = {k: float(v.mean()) for k, v in per.items()}
    rows = [{k: float(v[i]) for k, v in per.items()} for i in range(len(prompts))]
    return metrics, rows
