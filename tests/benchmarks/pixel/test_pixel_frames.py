"""Pixel-space metrics against their known ceilings and floors: identical or static frames score the
ceiling; independent uniform noise scores the closed-form floor (module docstring of
benchmarks/pixel/frames.py) within a tolerance of several standard errors."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.pixel.frames import (
    NOISE_FLICKER,
    NOISE_PSNR,
    PSNR_CAP,
    psnr,
    task_metrics,
    temporal_flickering,
)


def noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def test_temporal_flickering_ceiling_floor_and_formula() -> None:
    static = noise(3, 1, 16, 16, 3).expand(3, 6, 16, 16, 3).contiguous()
    assert temporal_flickering(static).tolist() == [1.0, 1.0, 1.0]
    assert temporal_flickering(noise(2, 1, 8, 8, 3)).tolist() == [
        1.0,
        1.0,
    ]  # one frame: nothing flickers
    # 61,440 frame differences of independent uniform frames: standard error of the score ~0.001
    assert NOISE_FLICKER == pytest.approx(0.66536, abs=1e-5)
    assert temporal_flickering(noise(4, 6, 32, 32, 3)).sub(NOISE_FLICKER).abs().max() < 0.005
    # VBench's cal_score: (255 - mean of per-pair MAE) / 255; pairs differing by 51 and 0 -> mean 25.5
    ramp = torch.zeros(1, 3, 4, 4, 3, dtype=torch.uint8)
    ramp[:, 1:] = 51
    assert temporal_flickering(ramp).item() == pytest.approx((255 - 25.5) / 255)
    with pytest.raises(
        ValueError, match=r"videos: expected uint8 tensor of shape \(N, F, H, W, 3\)"
    ):
        temporal_flickering(torch.zeros(1, 2, 4, 4))


def test_psnr_ceiling_floor_and_formula() -> None:
    a = noise(3, 32, 32, 3)
    assert psnr(a, a).tolist() == [PSNR_CAP] * 3
    assert NOISE_PSNR == pytest.approx(7.7474, abs=1e-3)
    assert (
        psnr(a, noise(3, 32, 32, 3, seed=1)).sub(NOISE_PSNR).abs().max() < 0.3
    )  # 3,072 pixels per clip
    shifted = (a.int() + 5).clamp(max=255).to(torch.uint8)
    exact = a.int() <= 250
    b = torch.where(exact, shifted, a)  # differs by 5 where it could, else equal
    mse = (exact.double() * 25).reshape(3, -1).mean(1)
    assert torch.allclose(psnr(a, b), 10 * torch.log10(255.0**2 / mse))
    assert (
        0
        <= float(
            psnr(
                torch.zeros(1, 4, 4, 3, dtype=torch.uint8),
                torch.full((1, 4, 4, 3), 255, dtype=torch.uint8),
            )
        )
        == 0.0
    )


def test_task_metrics_compare_the_given_frames() -> None:
    real = noise(2, 9, 16, 16, 3)
    gen = noise(2, 9, 16, 16, 3, seed=1)
    assert task_metrics("t2v", gen, real, 1) == {}
    assert task_metrics("i2v", real, real, 1)["first_frame_psnr"].tolist() == [PSNR_CAP] * 2
    mixed = gen.clone()
    mixed[:, 0], mixed[:, -1] = real[:, 0], real[:, -1]  # endpoints kept, the middle is noise
    assert task_metrics("interpolation", mixed, real, 1)["endpoint_psnr"].tolist() == [PSNR_CAP] * 2
    half = task_metrics("interpolation", torch.cat([real[:, :1], gen[:, 1:]], 1), real, 1)[
        "endpoint_psnr"
    ]
    assert half.sub((PSNR_CAP + NOISE_PSNR) / 2).abs().max() < 0.5
    # extrapolation: the first 5 frames were given; the rest is compared
    given = 5
    cont = torch.cat([gen[:, :given], real[:, given:]], 1)
    assert (
        task_metrics("extrapolation", cont, real, given)["continuation_psnr"].tolist()
        == [PSNR_CAP] * 2
    )
    assert (
        task_metrics("extrapolation", gen, real, given)["continuation_psnr"]
        .sub(NOISE_PSNR)
        .abs()
        .max()
        < 0.3
    )
    with pytest.raises(
        ValueError,
        match=r"i2v scoring: expected the real clips .* \(2, 9, 16, 16, 3\).*got \(2, 8, 16, 16, 3\)",
    ):
        task_metrics("i2v", gen, real[:, :8], 1)
    with pytest.raises(
        ValueError, match=r"extrapolation scoring: expected given frames in \[1, 9\).*got 9"
    ):
        task_metrics("extrapolation", gen, real, 9)
    assert not math.isnan(float(task_metrics("i2v", gen, real, 1)["first_frame_psnr"].mean()))
