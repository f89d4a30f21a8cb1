"""Tests for ursa.schedule: beta, shifting, frame timesteps (CPU, fast)."""

from __future__ import annotations

import math

import pytest
import torch

from ursa.schedule import beta, beta_dot, frame_timesteps, shift_for_tokens, shift_time


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_beta_and_derivative() -> None:
    assert float(beta(0.0, 3.0, 0.9)) == 0 and math.isinf(float(beta(1.0, 3.0, 0.9)))
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    eps = 1e-6
    fd = (beta(t + eps, 3.0, 0.9) - beta(t - eps, 3.0, 0.9)) / (2 * eps)
    torch.testing.assert_close(beta_dot(t, 3.0, 0.9), fd, rtol=1e-6, atol=0)  # central difference
    assert math.isinf(float(beta_dot(0.0, 3.0, 0.9)))  # alpha < 1: infinite at t = 0
    assert float(beta_dot(0.0, 3.0, 1.5)) == 0 and float(beta_dot(0.0, 3.0, 1.0)) == 3.0
    with pytest.raises(ValueError, match="t: expected values in"):
        beta(1.2, 3.0, 0.9)
    with pytest.raises(ValueError, match="alpha: expected"):
        beta(0.5, 3.0, -1.0)


def test_shift_time_properties() -> None:
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.equal(shift_time(t, 1.0), t) and shift_time(0.3, 1.0) == 0.3
    for s in (0.5, 2.0, 3.0):
        ts = shift_time(t, s)
        assert bool((ts[1:] > ts[:-1]).all()) and ts[0] == 0 and ts[-1] == 1  # monotone, fixes ends
        assert bool((ts <= t).all()) if s > 1 else bool((ts >= t).all())
    assert isinstance(shift_time(0.5, 3.0), float) and shift_time(0.5, 3.0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="shift"):
        shift_time(0.5, 0.0)


def test_shift_for_tokens_monotone() -> None:
    tokens = [1, 64, 256, 1000, 4096, 16_384, 33_280, 100_000]
    shifts = [shift_for_tokens(n) for n in tokens]
    assert all(b >= a for a, b in zip(shifts, shifts[1:]))
    assert shift_for_tokens(256) == pytest.approx(1.0) and shift_for_tokens(
        33_280
    ) == pytest.approx(3.0)
    assert shift_for_tokens(10**6) == pytest.approx(3.0) and shift_for_tokens(1) == pytest.approx(
        1.0
    )  # clamped
    mid = shift_for_tokens((256 + 33_280) // 2)
    assert mid == pytest.approx(math.sqrt(3.0), rel=1e-3)  # log-linear: geometric mean at midpoint
    with pytest.raises(ValueError, match="num_tokens"):
        shift_for_tokens(0)


def test_frame_timesteps_modes_and_shift() -> None:
    t = frame_timesteps(4000, 5, mode="async", generator=gen(1))
    assert t.shape == (4000, 5) and t.dtype == torch.float32
    assert float(t.min()) >= 0 and float(t.max()) < 1
    assert abs(t.mean().item() - 0.4995) < 0.01  # E[0.999 U]; standard error ~0.002
    assert (t[:, 0] != t[:, 1]).float().mean() > 0.99  # one t per frame
    s = frame_timesteps(100, 5, mode="sync", generator=gen(1))
    assert bool((s == s[:, :1]).all())  # one t per clip
    shifted = frame_timesteps(4000, 5, mode="async", shift=3.0, generator=gen(1))
    assert bool((shifted <= t).all())
    torch.testing.assert_close(shifted, shift_time(t, 3.0))
    assert torch.equal(
        frame_timesteps(8, 3, generator=gen(2)), frame_timesteps(8, 3, generator=gen(2))
    )


def test_frame_timesteps_condition_frames() -> None:
    f = 6
    first = frame_timesteps(50, f, p_first=1.0, generator=gen(3))
    assert bool((first[:, 0] == 1).all()) and bool((first[:, 1:] < 1).all())
    fl = frame_timesteps(50, f, p_first_last=1.0, generator=gen(3))
    assert bool((fl[:, [0, -1]] == 1).all()) and bool((fl[:, 1:-1] < 1).all())
    fk = frame_timesteps(500, f, p_first_k=1.0, generator=gen(3))
    k = (fk == 1).sum(1)
    assert bool(((k >= 1) & (k <= f - 1)).all()) and set(k.tolist()) == set(range(1, f))
    assert bool(torch.all((fk == 1) == (torch.arange(f) < k[:, None])))  # a clean prefix
    mix = frame_timesteps(20_000, f, p_first=0.2, p_first_last=0.3, generator=gen(4))
    frac_first_only = ((mix[:, 0] == 1) & (mix[:, -1] < 1)).float().mean().item()
    frac_both = ((mix[:, 0] == 1) & (mix[:, -1] == 1)).float().mean().item()
    # 4 binomial standard errors at 20k draws is < 0.014
    assert abs(frac_first_only - 0.2) < 0.014 and abs(frac_both - 0.3) < 0.014
    single = frame_timesteps(10, 1, p_first=1.0, generator=gen(5))
    assert bool((single < 1).all())  # conditioning the only frame would leave nothing to learn


def test_frame_timesteps_bad_input() -> None:
    with pytest.raises(ValueError, match="mode: expected"):
        frame_timesteps(2, 3, mode="frame")
    with pytest.raises(ValueError, match="p_first"):
        frame_timesteps(2, 3, p_first=0.7, p_first_k=0.6)
    with pytest.raises(ValueError, match="num_frames: expected"):
        frame_timesteps(2, 0)
