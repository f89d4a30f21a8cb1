"""Pixel-space metrics of generated clips, computed from frames alone (no feature extractor, no weights).

- temporal_flickering: VBench's formula (vbench/temporal_flickering.py, `cal_score`): the mean absolute
  difference of consecutive frames, mapped to (255 - mean_abs_diff) / 255 per clip. Ceiling 1 (a static
  clip); independent uniform noise frames give E|X - Y| = (256^2 - 1) / (3 * 256) = 85.33, so
  1 - 85.33 / 255 = 0.6654. VBench reads mp4 frames back (compression changes them slightly); here the
  decoded frames are scored as they are. A 1-frame clip scores 1 (nothing flickers).
- PSNR between generated and given frames, per clip over all its compared pixels:
  10 log10(255^2 / MSE), capped at PSNR_CAP dB (identical frames, MSE = 0, score the cap). Independent
  uniform noise gives MSE = 2 (256^2 - 1) / 12 = 10922.5, i.e. 7.75 dB.
  * first_frame_psnr (i2v): generated frame 0 vs the given frame;
  * endpoint_psnr (interpolation): mean of the first- and last-frame PSNRs;
  * continuation_psnr (extrapolation): the generated frames after the given ones vs the real clip's.
"""

from __future__ import annotations

import math

import torch

from ursa.tensor_checks import check_tensor

PSNR_CAP = (
    100.0  # dB: the score of identical frames (8-bit frames that differ at all stay below ~90 dB)
)
NOISE_FLICKER = 1.0 - (256**2 - 1) / (3 * 256) / 255.0  # independent uniform uint8 frames
NOISE_PSNR = 10 * math.log10(255.0**2 / (2 * (256**2 - 1) / 12))  # independent uniform uint8 frames


def temporal_flickering(videos: torch.Tensor) -> torch.Tensor:
    """uint8 (N, F, H, W, 3) -> float64 (N,): (255 - mean |frame_{f+1} - frame_f|) / 255 per clip."""
    check_tensor("videos", videos, torch.uint8, ("N", "F", "H", "W", 3))
    out = torch.ones(len(videos), dtype=torch.float64)
    if videos.shape[1] > 1:
        for n, clip in enumerate(
            videos
        ):  # one clip at a time: int16 copies of a whole batch can be large
            diff = (clip[1:].to(torch.int16) - clip[:-1].to(torch.int16)).abs()
            out[n] = (255.0 - diff.double().mean()) / 255.0
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """uint8 (N, ...) x uint8 (N, ...) of equal shapes -> float64 (N,) PSNR in dB, in [0, PSNR_CAP]."""
    mse = (
        torch.stack([(x.double() - y.double()).pow(2).mean() for x, y in zip(a, b)])
        if len(a)
        else torch.zeros(0)
    )
    db = 10 * torch.log10(255.0**2 / mse.clamp_min(1e-300).double())
    return torch.where(mse == 0, torch.full_like(db, PSNR_CAP), db.clamp(0.0, PSNR_CAP))


def task_metrics(
    task: str, videos: torch.Tensor, real: torch.Tensor, given_frames: int
) -> dict[str, torch.Tensor]:
    """Per-clip frame-comparison metrics of one conditioned task, {name: float64 (N,)}; {} for a task
    without given frames (t2v, t2i, long). videos, real: uint8 (N, F, H, W, 3) of one shape;
    given_frames: pixel frames given to the sampler (extrapolation)."""
    check_tensor("videos", videos, torch.uint8, ("N", "F", "H", "W", 3))
    if task not in METRIC_OF_TASK:
        return {}
    if tuple(real.shape) != tuple(videos.shape):
        raise ValueError(
            f"{task} scoring: expected the real clips of the prompts in the generated clips' shape "
            f"{tuple(videos.shape)} (N, F, H, W, 3), got {tuple(real.shape)}"
        )
    if task == "i2v":
        return {"first_frame_psnr": psnr(videos[:, 0], real[:, 0])}
    if task == "interpolation":
        return {
            "endpoint_psnr": (psnr(videos[:, 0], real[:, 0]) + psnr(videos[:, -1], real[:, -1])) / 2
        }
    frames = videos.shape[1]
    if not 1 <= given_frames < frames:
        raise ValueError(
            f"extrapolation scoring: expected given frames in [1, {frames}) (the clip's frames), got "
            f"{given_frames} (the prompts' condition_frames)"
        )
    return {"continuation_psnr": psnr(videos[:, given_frames:], real[:, given_frames:])}


METRIC_OF_TASK = {
    "i2v": "first_frame_psnr",
    "interpolation": "endpoint_psnr",
    "extrapolation": "continuation_psnr",
}
