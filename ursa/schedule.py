"""Time schedules for URSA: the metric path's beta_t, timestep shifting, per-frame training
timesteps, and calibration of a "linearised" metric path (see URSA_MATH.md).

Time convention: t = 0 is pure noise, t = 1 is clean data.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from scipy.optimize import least_squares, minimize

if TYPE_CHECKING:
    from ursa.paths import ProbPath

Number = float | torch.Tensor


def _as_time(t: Number, name: str = "t") -> torch.Tensor:
    """t (float or float tensor, values in [0, 1]) -> float64 tensor."""
    if isinstance(t, torch.Tensor):
        if not t.is_floating_point():
            raise ValueError(f"{name}: expected a float tensor or float in [0, 1], got dtype {t.dtype}")
        tt = t.to(torch.float64)
    elif isinstance(t, (int, float)) and not isinstance(t, bool):
        tt = torch.tensor(float(t), dtype=torch.float64)
    else:
        raise ValueError(f"{name}: expected a float tensor or float in [0, 1], got {type(t).__name__}")
    if tt.numel() and not bool(((tt >= 0) & (tt <= 1)).all()):
        raise ValueError(
            f"{name}: expected values in [0, 1], got values in [{float(tt.min())}, {float(tt.max())}]"
            if not bool(tt.isnan().any()) else f"{name}: expected values in [0, 1], got NaN"
        )
    return tt


def _check_positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")


def beta(t: Number, c: float, alpha: float) -> torch.Tensor:
    """Metric-path inverse temperature beta_t = c (t / (1 - t))^alpha, float64, shape of t.

    beta_0 = 0 (uniform), beta_1 = +inf (all mass on x1).
    """
    _check_positive("c", c)
    _check_positive("alpha", alpha)
    tt = _as_time(t)
    return c * (tt / (1 - tt)).pow(alpha)  # 1/0 -> inf at t = 1, as intended


def beta_dot(t: Number, c: float, alpha: float) -> torch.Tensor:
    """d beta / dt = c alpha t^(alpha-1) / (1 - t)^(alpha+1), float64, shape of t.

    Infinite at t = 1, and at t = 0 when alpha < 1 (the rate integrates to the finite beta_h
    over [0, h]; `MetricPath.step` uses that integral where this is infinite).
    """
    _check_positive("c", c)
    _check_positive("alpha", alpha)
    tt = _as_time(t)
    return c * alpha * tt.pow(alpha - 1) / (1 - tt).pow(alpha + 1)


def shift_time(t: Number, shift: float) -> Number:
    """Resolution shift t' = t / (t + shift (1 - t)); shift = 1 is the identity, shift > 1 moves
    time towards noise (t' <= t). Float in -> float out, tensor in -> tensor (same dtype) out."""
    _check_positive("shift", shift)
    if isinstance(t, torch.Tensor):
        _as_time(t)
        return t if shift == 1 else t / (t + shift * (1 - t))
    tt = float(_as_time(t))
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
    if not (isinstance(base_tokens, int) and isinstance(max_tokens, int) and 1 <= base_tokens < max_tokens):
        raise ValueError(f"base_tokens, max_tokens: expected ints with 1 <= base < max, got {base_tokens}, {max_tokens}")
    _check_positive("base_shift", base_shift)
    _check_positive("max_shift", max_shift)
    frac = min(max((num_tokens - base_tokens) / (max_tokens - base_tokens), 0.0), 1.0)
    return math.exp(math.log(base_shift) + frac * (math.log(max_shift) - math.log(base_shift)))


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
        raise ValueError(f"p_first, p_first_last, p_first_k: expected values in [0, 1] summing to <= 1, got {probs}")
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


def mean_corruption_distance(
    path: ProbPath,
    embeddings: torch.Tensor,
    t_grid: torch.Tensor | list[float],
    x1: torch.Tensor | None = None,
    n: int = 4096,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Empirical mean d(x_t, x1) over x_t ~ path.sample(x1, t) for each t in t_grid, float64
    (len(t_grid),). x1 defaults to n uniform ids. The masked path's mask token counts as D(0),
    the mean distance between two uniform ids (so every path starts at D(0) and ends at 0)."""
    from ursa.paths import MetricPath  # deferred: ursa.paths imports beta/beta_dot from here

    metric = MetricPath(embeddings)
    if metric.vocab_size != path.vocab_size:
        raise ValueError(f"embeddings: expected {path.vocab_size} rows (path.vocab_size), got {metric.vocab_size}")
    if x1 is None:
        x1 = torch.randint(path.vocab_size, (n,), generator=generator, device=metric.embeddings.device)
    grid = _as_time(torch.as_tensor(t_grid, dtype=torch.float64), "t_grid").flatten()
    out = torch.empty(len(grid), dtype=torch.float64)
    for i, t in enumerate(grid.tolist()):
        xt = path.sample(x1, t, generator=generator)
        masked = xt >= path.vocab_size
        d = metric.distance(xt.clamp(max=path.vocab_size - 1), x1).to(torch.float64)
        out[i] = torch.where(masked, metric.uniform_distance(), d).mean()
    return out


def expected_distance(dist: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Exact D(beta) = mean over rows of sum_x softmax(-beta d)_x d_x for each beta.

    dist: float (m, K) distances d(x, x1) of m x1 rows to all states (d(x1, x1) = 0);
    betas: float (P,). Returns float64 (P,). Rows go in blocks of ~4M float64 values.
    """
    d_all = dist.to(torch.float64)
    b = betas.to(torch.float64)[:, None, None]
    m, k = d_all.shape
    total = torch.zeros(len(betas), dtype=torch.float64)
    for d in d_all.split(max(1, (1 << 22) // (len(betas) * k))):
        w = torch.exp(-b * d)  # (P, rows, K); exponent <= 0 and w(x1) = 1: stable
        total += ((w * d).sum(2) / w.sum(2)).sum(1)
    return total / m


def calibrate_metric_path(
    embeddings: torch.Tensor,
    *,
    num_points: int = 11,
    num_rows: int = 128,
    seed: int = 0,
) -> tuple[float, float]:
    """(c, alpha) making the exact mean corruption distance D(t) close to D(0) (1 - t) at
    num_points evenly spaced t (the linearised path). Deterministic given seed.

    D depends on t only through beta_t, so:
    1. tabulate D(beta) exactly over a seeded subsample of num_rows x1 ids (all K if fewer):
       coarsely on log beta in [-12, 16], then finely (step 0.05) where D spans the targets;
       a monotone (PCHIP) interpolant in log beta stands in for D afterwards;
    2. invert it at the targets D(0)(1 - t_i) and fit log beta_i = log c + alpha logit(t_i)
       by linear least squares;
    3. refine (log c, alpha) on the residuals r_i = (D(t_i) - D(0)(1 - t_i)) / D(0): least
       squares, then a Nelder-Mead polish of max_i |r_i| (the acceptance criterion).
    """
    from ursa.paths import MetricPath  # deferred: ursa.paths imports beta/beta_dot from here

    if not isinstance(num_points, int) or isinstance(num_points, bool) or num_points < 3:
        raise ValueError(f"num_points: expected an int >= 3, got {num_points!r}")
    if not isinstance(num_rows, int) or isinstance(num_rows, bool) or num_rows < 1:
        raise ValueError(f"num_rows: expected an int >= 1, got {num_rows!r}")
    metric = MetricPath(embeddings, chunk_size=256)
    K = metric.vocab_size
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(K) if K <= num_rows else torch.randperm(K, generator=g)[:num_rows].sort().values
    dist = metric.distances_to(rows.to(metric.embeddings.device)).cpu()
    d0 = float(dist.to(torch.float64).mean())
    ts = np.linspace(0.0, 1.0, num_points)[1:-1]
    target = d0 * (1 - ts)

    coarse = np.arange(-12.0, 16.0 + 1e-9, 0.25)
    dc = expected_distance(dist, torch.from_numpy(np.exp(coarse))).numpy()
    inside = np.nonzero((dc <= target.max() + 0.05 * d0) & (dc >= target.min() - 0.05 * d0))[0]
    lo, hi = coarse[max(inside.min() - 4, 0)], coarse[min(inside.max() + 4, len(coarse) - 1)]
    fine = np.arange(lo, hi + 1e-9, 0.05)
    curve = PchipInterpolator(fine, expected_distance(dist, torch.from_numpy(np.exp(fine))).numpy(), extrapolate=False)

    def residuals(p: np.ndarray) -> np.ndarray:
        logb = np.clip(p[0] + p[1] * s, lo, hi)  # outside the table D is ~D(0) or ~0: clamp
        return (curve(logb) - target) / d0

    s = np.log(ts / (1 - ts))
    dfine = curve(fine)
    logb_star = np.interp(target, dfine[::-1], fine[::-1])  # D decreases in beta
    alpha0, logc0 = np.polyfit(s, logb_star, 1)
    fit = least_squares(residuals, np.array([logc0, max(alpha0, 0.05)]), bounds=([-30.0, 0.05], [30.0, 10.0]))
    polish = minimize(lambda p: float(np.abs(residuals(p)).max()), fit.x, method="Nelder-Mead",
                      options={"xatol": 1e-6, "fatol": 1e-8, "maxfev": 2000})
    best = polish.x if polish.fun < np.abs(fit.fun).max() and polish.x[1] > 0 else fit.x
    return float(np.exp(best[0])), float(best[1])
