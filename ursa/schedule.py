"""Time schedules for URSA: the metric path's beta_t, timestep shifting and per-frame training
timesteps (see docs/math.md, "Metric path", "Timestep shift" and "Frame-wise asynchronous
timesteps"). Calibrating the metric path's (c, alpha) is `ursa.calibration`.

Time convention: t = 0 is pure noise, t = 1 is clean data.
"""

from __future__ import annotations

import math
from typing import Literal, TypeVar

import torch

from ursa.tensor_checks import check_time

Number = float | torch.Tensor
Time = TypeVar("Time", float, torch.Tensor)  # shift_time keeps a float a float, a tensor a tensor


def _check_positive(name: str, value: float) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not value > 0
        or not math.isfinite(value)
    ):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")


def beta(t: Number, c: float, alpha: float) -> torch.Tensor:
    """Metric-path inverse temperature beta_t = c (t / (1 - t))^alpha, float64, shape of t.

    beta_0 = 0 (uniform), beta_1 = +inf (all mass on x1).
    """
    _check_positive("c", c)
    _check_positive("alpha", alpha)
    tt = check_time("t", t)
    return c * (tt / (1 - tt)).pow(alpha)  # 1/0 -> inf at t = 1, as intended


def beta_dot(t: Number, c: float, alpha: float) -> torch.Tensor:
    """d beta / dt = c alpha t^(alpha-1) / (1 - t)^(alpha+1), float64, shape of t.

    Infinite at t = 1, and at t = 0 when alpha < 1 (the rate integrates to the finite beta_h
    over [0, h]; `MetricPath.step` uses that integral where this is infinite).
    """
    _check_positive("c", c)
    _check_positive("alpha", alpha)
    tt = check_time("t", t)
    return c * alpha * tt.pow(alpha - 1) / (1 - tt).pow(alpha + 1)


def shift_time(t: Time, shift: float) -> Time:
    """Resolution shift t' = t / (t + shift (1 - t)); shift = 1 is the identity, shift > 1 moves
    time towards noise (t' <= t). Float in -> float out, tensor in -> tensor (same dtype) out."""
    _check_positive("shift", shift)
    if isinstance(t, torch.Tensor):
        check_time("t", t)
        return t if shift == 1 else t / (t + shift * (1 - t))
    tt = float(check_time("t", t))
    return tt if shift == 1 else tt / (tt + shift * (1 - tt))


def shift_for_tokens(
    num_tokens: int,
    base_tokens: int = 256,
    base_shift: float = 1.0,
    max_tokens: int = 33_280,
    max_shift: float = 3.0,
) -> float:
    """Resolution-dependent shift: Flux-style, log(shift) linear in the token count between
    (base_tokens, base_shift) and (max_tokens, max_shift), clamped to that range outside it.

    Defaults: a 16x16-token image gets 1.0 and URSA's 49x320x512 video (13x40x64 = 33,280 tokens)
    gets the paper's best video shift 3.0.
    """
    if not isinstance(num_tokens, int) or isinstance(num_tokens, bool) or num_tokens < 1:
        raise ValueError(f"num_tokens: expected an int >= 1, got {num_tokens!r}")
    if not (
        isinstance(base_tokens, int)
        and isinstance(max_tokens, int)
        and 1 <= base_tokens < max_tokens
    ):
        raise ValueError(
            f"base_tokens, max_tokens: expected ints with 1 <= base < max, got {base_tokens}, {max_tokens}"
        )
    _check_positive("base_shift", base_shift)
    _check_positive("max_shift", max_shift)
    frac = min(max((num_tokens - base_tokens) / (max_tokens - base_tokens), 0.0), 1.0)
    return math.exp(math.log(base_shift) + frac * (math.log(max_shift) - math.log(base_shift)))


ShiftRule = Literal["fixed", "resolution"]


def resolve_shift(shift: float, rule: ShiftRule, num_tokens: int) -> float:
    """The shift lambda to use for clips of `num_tokens` visual tokens: `shift` itself under the
    "fixed" rule, `shift_for_tokens(num_tokens)` under the paper's "resolution" rule (larger
    token counts need a larger shift)."""
    if rule == "resolution":
        return shift_for_tokens(int(num_tokens))
    if rule != "fixed":
        raise ValueError(f"shift_rule: expected 'fixed' or 'resolution', got {rule!r}")
    _check_positive("shift", shift)
    return float(shift)


def frame_timesteps(
    batch: int,
    num_frames: int,
    *,
    mode: str = "async",
    shift: float = 1.0,
    p_first: float = 0.0,
    p_first_last: float = 0.0,
    p_first_k: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Training timesteps, float32 (batch, num_frames).

    U ~ U(0, 1) per latent frame ("async") or per clip ("sync"); t = shift_time(0.999 U, shift),
    so t < 1 (the authors' sigma = 1 - 0.999 U). Per sample, with probabilities p_first /
    p_first_last / p_first_k, the first / first and last / first k (k ~ U{1..F-1}) frames are
    condition frames held clean (t = 1.0), teaching one model I2V, interpolation and
    extrapolation. A condition pattern that would leave no noisy frame (e.g. p_first with
    num_frames = 1) is skipped for that call. Always draws the same random numbers.
    """
    for name, v in (("batch", batch), ("num_frames", num_frames)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    if mode not in ("async", "sync"):
        raise ValueError(f"mode: expected 'async' or 'sync', got {mode!r}")
    probs = (p_first, p_first_last, p_first_k)
    if any(not 0 <= p <= 1 for p in probs) or sum(probs) > 1 + 1e-9:
        raise ValueError(
            f"p_first, p_first_last, p_first_k: expected values in [0, 1] summing to <= 1, got {probs}"
        )
    u = torch.rand(batch, num_frames if mode == "async" else 1, generator=generator)
    t = shift_time(0.999 * u, shift).expand(batch, num_frames).clone()
    pick = torch.rand(batch, generator=generator)
    k = torch.randint(1, max(num_frames, 2), (batch,), generator=generator)
    frame = torch.arange(num_frames)
    edges = torch.tensor(probs).cumsum(0)
    first = (pick < edges[0]) & (num_frames >= 2)
    first_last = (pick >= edges[0]) & (pick < edges[1]) & (num_frames >= 3)
    first_k = (pick >= edges[1]) & (pick < edges[2]) & (num_frames >= 2)
    clean = (
        (first | first_last)[:, None] & (frame == 0)
        | first_last[:, None] & (frame == num_frames - 1)
        | first_k[:, None] & (frame[None, :] < k[:, None])
    )
    return t.masked_fill(clean, 1.0)
