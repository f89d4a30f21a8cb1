"""Calibration of the metric path's (c, alpha): the "linearised" path whose mean corruption
distance D(t) falls linearly from D(0) to 0 (docs/math.md, "Linearised metric path").

D(t) = E_{x1, x ~ p_t(.|x1)} d(x, x1) depends on t only through beta_t, so it is tabulated
exactly as a function of beta (`expected_distance`) and (c, alpha) are fitted to it.
`mean_corruption_distance` estimates D(t) by sampling, for any path (reports, tests).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from scipy.optimize import least_squares, minimize

from ursa.paths import MetricPath, ProbPath
from ursa.tensor_checks import check_time


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
    metric = MetricPath(embeddings)
    if metric.vocab_size != path.vocab_size:
        raise ValueError(
            f"embeddings: expected {path.vocab_size} rows (path.vocab_size), got {metric.vocab_size}"
        )
    if x1 is None:
        x1 = torch.randint(
            path.vocab_size, (n,), generator=generator, device=metric.embeddings.device
        )
    grid = check_time("t_grid", torch.as_tensor(t_grid, dtype=torch.float64)).flatten()
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
    if not isinstance(num_points, int) or isinstance(num_points, bool) or num_points < 3:
        raise ValueError(f"num_points: expected an int >= 3, got {num_points!r}")
    if not isinstance(num_rows, int) or isinstance(num_rows, bool) or num_rows < 1:
        raise ValueError(f"num_rows: expected an int >= 1, got {num_rows!r}")
    metric = MetricPath(embeddings, chunk_size=256)
    K = metric.vocab_size
    g = torch.Generator().manual_seed(seed)
    rows = (
        torch.arange(K)
        if K <= num_rows
        else torch.randperm(K, generator=g)[:num_rows].sort().values
    )
    dist = metric.distances_to(rows.to(metric.embeddings.device)).cpu()
    d0 = float(dist.to(torch.float64).mean())
    ts = np.linspace(0.0, 1.0, num_points)[1:-1]
    target = d0 * (1 - ts)

    coarse = np.arange(-12.0, 16.0 + 1e-9, 0.25)
    dc = expected_distance(dist, torch.from_numpy(np.exp(coarse))).numpy()
    inside = np.nonzero((dc <= target.max() + 0.05 * d0) & (dc >= target.min() - 0.05 * d0))[0]
    lo, hi = coarse[max(inside.min() - 4, 0)], coarse[min(inside.max() + 4, len(coarse) - 1)]
    fine = np.arange(lo, hi + 1e-9, 0.05)
    curve = PchipInterpolator(
        fine, expected_distance(dist, torch.from_numpy(np.exp(fine))).numpy(), extrapolate=False
    )

    def residuals(p: np.ndarray) -> np.ndarray:
        logb = np.clip(p[0] + p[1] * s, lo, hi)  # outside the table D is ~D(0) or ~0: clamp
        return (curve(logb) - target) / d0

    s = np.log(ts / (1 - ts))
    dfine = curve(fine)
    logb_star = np.interp(target, dfine[::-1], fine[::-1])  # D decreases in beta
    alpha0, logc0 = np.polyfit(s, logb_star, 1)
    fit = least_squares(
        residuals, np.array([logc0, max(alpha0, 0.05)]), bounds=([-30.0, 0.05], [30.0, 10.0])
    )
    polish = minimize(
        lambda p: float(np.abs(residuals(p)).max()),
        fit.x,
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-8, "maxfev": 2000},
    )
    best = polish.x if polish.fun < np.abs(fit.fun).max() and polish.x[1] > 0 else fit.x
    return float(np.exp(best[0])), float(best[1])
