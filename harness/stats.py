"""Inference for the harness's design: every arm and seed is scored on the same prompts, so seeds
and prompts are crossed factors, and a verdict is a t test on that design.

A value per (seed, prompt), x_sp, is modelled as two-way random effects without replication:
x_sp = mu + a_s + b_p + e_sp with variances s2_seed, s2_prompt and s2_res. From the three mean
squares of the (S, P) table (MS_S, MS_P, MS_E) the variance of the grand mean is

    var(mean) = s2_seed / S + s2_prompt / P + s2_res / (S P) = (MS_S + MS_P - MS_E) / (S P),

with the prompt term MS_P - MS_E set to 0 when it is estimated below 0 and the seed term MS_S
always kept with its S - 1 df (dropping it when MS_S < MS_E by chance, as plain truncation does,
made 3-seed tests 7% false positives; it is floored at the 2.5% quantile it has with no seed
variance, so tied seeds never give a zero-width interval), and the
interval is mean +- t(df) sqrt(var) with Satterthwaite's df for that combination of mean squares:
S - 1 when the prompt term is 0, so the seed-level t interval is the special case P = 1. Resampling
prompts only within seeds (the old two-stage bootstrap) misses the prompt effect all seeds share;
a bootstrap of 3-5 seed values read as 95% covers ~80%. Paired differences are the same interval
on per-(seed, prompt) differences, so pairing by seed and prompt is kept. A table with one value
per seed (run-level statistics such as the mean over a learning curve or the steps to reach a
level) gets the seed-level t interval (df S - 1). An interval is clipped to the metric's range
(clipping never excludes a true value inside the range, so coverage is unchanged).

Multiplicity (`holm`), power (`Components.mde`, `Components.seeds_for`) and the simulated
coverage of every interval are in tests/harness/test_harness_stats.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as sps

LEVEL = 0.95
ALPHA = 1 - LEVEL
POWER = 0.8
MAX_SEEDS = 1000  # `seeds_for` answers "more than this" beyond it


@dataclass(frozen=True)
class Components:
    """Variance components of an (S, P) table of per-(seed, prompt) values, for planning.

    seeds / prompts: the table's shape (prompts 1: one value per seed, everything in `seed`)."""

    seed: float
    prompt: float
    residual: float
    seeds: int
    prompts: int

    def se(self, seeds: int | None = None, prompts: int | None = None) -> float:
        """Standard error of the grand mean with `seeds` x `prompts` (default: the table's)."""
        s, p = seeds or self.seeds, prompts or self.prompts
        return math.sqrt(self.seed / s + self.prompt / p + self.residual / (s * p))

    def df(self, seeds: int | None = None, prompts: int | None = None) -> float:
        """Satterthwaite degrees of freedom of `se` from the expected mean squares."""
        s, p = seeds or self.seeds, prompts or self.prompts
        if p == 1 or self.prompts == 1 or self.prompt == 0:
            return float(s - 1)
        ms = (self.residual + p * self.seed, self.residual + s * self.prompt, self.residual)
        dfs = (s - 1, p - 1, (s - 1) * (p - 1))
        return _satterthwaite((1.0, 1.0, -1.0), ms, dfs)

    def mde(
        self,
        seeds: int | None = None,
        prompts: int | None = None,
        alpha: float = ALPHA,
        power: float = POWER,
    ) -> float:
        """Smallest true difference a two-sided t test at `alpha` detects with `power`:
        (t_{1-alpha/2} + t_{power}) x se, both at the design's df."""
        s = seeds or self.seeds
        if s < 2:
            return math.nan
        df = max(self.df(seeds, prompts), 1.0)
        return float(
            (sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * self.se(seeds, prompts)
        )

    def seeds_for(
        self, effect: float, prompts: int | None = None, alpha: float = ALPHA, power: float = POWER
    ) -> int | None:
        """Fewest seeds (>= 2) at which `effect` is detected with `power`; None when more than
        MAX_SEEDS would be needed (e.g. the prompt term alone is too large: more prompts help)."""
        effect = abs(effect)
        if not effect > 0 or not math.isfinite(effect):
            return None
        if self.mde(MAX_SEEDS, prompts, alpha, power) > effect:
            return None
        lo, hi = 2, MAX_SEEDS
        while lo < hi:  # mde falls with seeds
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.mde(mid, prompts, alpha, power) <= effect else (mid + 1, hi)
        return lo


def _satterthwaite(coef: tuple[float, ...], ms: tuple[float, ...], dfs: tuple[int, ...]) -> float:
    """df of sum(coef * ms) where each ms has its df (Satterthwaite 1946)."""
    total = sum(c * m for c, m in zip(coef, ms))
    denom = sum((c * m) ** 2 / d for c, m, d in zip(coef, ms, dfs) if c and d > 0)
    return total**2 / denom if denom > 0 else math.inf


@dataclass(frozen=True)
class Estimate:
    """A mean with its t interval over `seeds` seeds x `clips` prompts (clips 1: seed-level).

    se, df: the interval's standard error and degrees of freedom; bounds: the range the interval
    is clipped to; method: how it was computed (said in the report); components: for power."""

    mean: float
    low: float
    high: float
    seeds: int
    clips: int
    se: float = math.nan
    df: float = math.nan
    bounds: tuple[float, float] = (-math.inf, math.inf)
    method: str = ""
    components: Components | None = None
    level: float = LEVEL

    @property
    def p(self) -> float:
        """Two-sided p-value of the t test of mean 0 (NaN where there is no interval)."""
        if not math.isfinite(self.mean) or not math.isfinite(self.se):
            return math.nan
        if self.se == 0:
            return 0.0 if self.mean != 0 else 1.0
        return float(2 * sps.t.sf(abs(self.mean) / self.se, self.df))

    def at_level(self, level: float) -> Estimate:
        """The same estimate with a `level` interval (e.g. Bonferroni-adjusted), clipped alike."""
        if not (math.isfinite(self.se) and self.df > 0):
            return replace(self, level=level)
        half = float(sps.t.ppf((1 + level) / 2, self.df)) * self.se
        lo, hi = self.bounds
        return replace(
            self, low=max(self.mean - half, lo), high=min(self.mean + half, hi), level=level
        )

    def fmt(self, digits: int = 3, signed: bool = False) -> str:
        if not math.isfinite(self.mean):
            return "—"
        sign = "+" if signed else ""
        if (
            not (math.isfinite(self.low) and math.isfinite(self.high))
            or self.seeds * self.clips < 2
        ):
            return f"{self.mean:{sign}.{digits}g}"
        low, high = f"{self.low:{sign}.{digits}g}", f"{self.high:{sign}.{digits}g}"
        return f"{self.mean:{sign}.{digits}g} [{low}, {high}]"


NAN = Estimate(math.nan, math.nan, math.nan, 0, 0)


def _matrix(per_seed: Sequence[np.ndarray | list[float] | float]) -> tuple[np.ndarray, str]:
    """(S, P) table of per-seed, per-prompt values and a note on what was dropped.

    Seeds with equal prompt counts are matched prompt by prompt; a prompt some seed lacks (a
    missing or non-finite clip) is left out for all; when counts differ or no prompt is complete,
    each seed's mean over its finite values stands for it (a seed-level interval)."""
    rows = [np.atleast_1d(np.asarray(v, dtype=float)) for v in per_seed]
    rows = [r for r in rows if np.isfinite(r).any()]
    if not rows:
        return np.zeros((0, 1)), ""
    if len({len(r) for r in rows}) == 1:
        x = np.stack(rows)
        keep = np.isfinite(x).all(0)
        if keep.all():
            return x, ""
        if keep.sum() >= 2 or (keep.sum() == 1 and x.shape[1] == 1):
            return x[:, keep], f"{int((~keep).sum())} prompt(s) some seed lacks left out"
        note = "prompts missing in some seeds: seed means"
    else:
        note = "prompt counts differ between seeds (prompts cannot be matched): seed means"
    return np.array([[float(np.nanmean(r))] for r in rows]), note


def anova(x: np.ndarray) -> dict[str, np.ndarray]:
    """Two-way random-effects fit of complete (..., S, P) tables (S >= 2, P >= 2), vectorised over
    the leading axes: mean, se and Satterthwaite df of the grand mean, and the variance
    components seed, prompt, residual (each >= 0)."""
    s, p = x.shape[-2:]
    mean = x.mean((-2, -1))
    rows, cols = x.mean(-1), x.mean(-2)
    ms_s = p * ((rows - mean[..., None]) ** 2).sum(-1) / (s - 1)
    ms_p = s * ((cols - mean[..., None]) ** 2).sum(-1) / (p - 1)
    resid = x - rows[..., :, None] - cols[..., None, :] + mean[..., None, None]
    ms_e = (resid**2).sum((-2, -1)) / ((s - 1) * (p - 1))
    # var(mean) = MS_S / (S P) + max(MS_P - MS_E, 0) / (S P): the seed term is always in, with its
    # S - 1 df (with 3 seeds MS_S < MS_E happens by chance in 1 of 4 studies; dropping the term
    # then swaps df 2 for ~90 and under-covers), floored at the 2.5% quantile MS_S would have with
    # no seed variance (E MS_S >= E MS_E), so tied seeds never give a zero-width interval
    floor = ms_e * sps.chi2.ppf(0.025, s - 1) / (s - 1)
    seed_term = np.maximum(ms_s, floor)
    c_p = (ms_p > ms_e).astype(float)
    var = (seed_term + c_p * (ms_p - ms_e)) / (s * p)
    denom = (
        seed_term**2 / (s - 1)
        + (c_p * ms_p) ** 2 / (p - 1)
        + (c_p * ms_e) ** 2 / ((s - 1) * (p - 1))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, (s * p * var) ** 2 / np.where(denom > 0, denom, 1.0), np.inf)
    return {
        "mean": mean,
        "se": np.sqrt(np.maximum(var, 0.0)),
        "df": df,
        "seed": np.maximum(ms_s - ms_e, 0) / p,
        "prompt": np.maximum(ms_p - ms_e, 0) / s,
        "residual": ms_e,
    }


def seed_t(x: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, se and df (n - 1) of (..., n) values, vectorised over the leading axes."""
    n = x.shape[-1]
    return {
        "mean": x.mean(-1),
        "se": np.sqrt(x.var(-1, ddof=1) / n),
        "df": np.full(x.shape[:-1], n - 1.0),
    }


def t_interval(
    mean: np.ndarray | np.float64,
    se: np.ndarray | np.float64,
    df: np.ndarray | np.float64,
    level: float = LEVEL,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> tuple[np.ndarray, np.ndarray]:
    """mean +- t_{(1+level)/2, df} se, clipped to `bounds` (vectorised)."""
    df = np.where(np.isfinite(df), df, 1e9)
    half = np.where(np.asarray(se) > 0, sps.t.ppf((1 + level) / 2, np.maximum(df, 1e-9)) * se, 0.0)
    return np.maximum(mean - half, bounds[0]), np.minimum(mean + half, bounds[1])


TIE = 1e-12  # values this close are equal (floating-point rounding)


def crossed(
    per_seed: Sequence[np.ndarray | list[float] | float],
    bounds: tuple[float, float] = (-math.inf, math.inf),
    level: float = LEVEL,
) -> Estimate:
    """Grand mean of per-(seed, prompt) values with its crossed random-effects t interval (`anova`).

    per_seed: one entry per seed, each the per-prompt values of that seed (prompt i of every seed
    is the same prompt) or one value. One value per seed gives the seed-level t interval (df S-1);
    one seed gives the prompt-level interval, which cannot include seed variation (said in
    `method`)."""
    x, note = _matrix(per_seed)
    s, p = x.shape
    if s == 0:
        return NAN
    mean = float(x.mean())
    if s * p < 2:
        return Estimate(mean, math.nan, math.nan, s, p, bounds=bounds, method="one value")
    if p == 1 or s == 1:
        fit = seed_t(x[:, 0] if p == 1 else x[0])
        method = (
            "seed-level t" if p == 1 else "one seed: prompt-level t, seed variation not included"
        )
        comps = Components(float(fit["se"]) ** 2 * s, 0.0, 0.0, s, 1) if p == 1 else None
    else:
        fit = anova(x)
        comps = Components(float(fit["seed"]), float(fit["prompt"]), float(fit["residual"]), s, p)
        method = "crossed seed x prompt t"
    se, df = float(fit["se"]), float(fit["df"])
    if np.ptp(x) <= TIE * max(1.0, abs(mean)):
        # every value equal: nothing varies, and a mean within rounding of 0 is 0 (a contrast of
        # equal cells, e.g. a metric at its ceiling for every arm, sums to ~1e-15, not to 0)
        se, mean = 0.0, 0.0 if abs(mean) <= TIE else mean
    low, high = (
        float(v)
        for v in t_interval(np.float64(mean), np.float64(se), np.float64(df), level, bounds)
    )
    return Estimate(
        mean, low, high, s, p, se, df, bounds, "; ".join(filter(None, (method, note))), comps, level
    )


def seed_level(
    values: list[float], bounds: tuple[float, float] = (-math.inf, math.inf), level: float = LEVEL
) -> Estimate:
    """Mean of one value per seed with its t interval (df S - 1)."""
    return crossed([[v] for v in values if math.isfinite(v)], bounds, level)


def paired_difference(
    a: dict[int, np.ndarray],
    b: dict[int, np.ndarray],
    bounds: tuple[float, float] = (-math.inf, math.inf),
    level: float = LEVEL,
) -> Estimate:
    """a - b on the seeds both have ({seed: per-prompt values}), prompt by prompt (same prompts),
    with the crossed interval of the per-(seed, prompt) differences."""
    return crossed(paired_values(a, b), bounds, level)


def paired_values(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> list[np.ndarray]:
    """Per-seed a - b on common seeds: prompt by prompt, or of the means where counts differ."""
    out = []
    for s in sorted(set(a) & set(b)):
        x, y = np.atleast_1d(np.asarray(a[s], float)), np.atleast_1d(np.asarray(b[s], float))
        out.append(x - y if len(x) == len(y) else np.array([np.nanmean(x) - np.nanmean(y)]))
    return out


def difference_of_differences(
    a1: dict[int, np.ndarray],
    b1: dict[int, np.ndarray],
    a2: dict[int, np.ndarray],
    b2: dict[int, np.ndarray],
    bounds: tuple[float, float] = (-math.inf, math.inf),
    level: float = LEVEL,
) -> Estimate:
    """(a2 - b2) - (a1 - b1): how a paired gap changes between two settings (an interaction),
    on the seeds all four have, prompt by prompt where the prompt counts agree."""
    d1 = dict(zip(sorted(set(a1) & set(b1)), paired_values(a1, b1)))
    d2 = dict(zip(sorted(set(a2) & set(b2)), paired_values(a2, b2)))
    return paired_difference(d2, d1, bounds, level)


def contrast(
    cells: list[dict[int, np.ndarray]],
    weights: list[float],
    bounds: tuple[float, float] = (-math.inf, math.inf),
    level: float = LEVEL,
) -> Estimate:
    """sum_k w_k x_k over cells k ({seed: per-prompt values} each), per (seed, prompt), with the
    crossed interval of those sums: any linear contrast of arm means that keeps the pairing by
    seed and prompt (weights (1, -1): a paired difference; (1, -1, -1, 1): a difference of
    differences; `slope_weights` against a -slope_weights: the change of a slope). Seeds every
    cell has; prompt by prompt where every cell has one prompt count, else seed means."""
    if len(cells) != len(weights) or not cells:
        raise ValueError(
            f"contrast: expected one weight per cell, got {len(weights)} weights for "
            f"{len(cells)} cells"
        )
    seeds = sorted(set.intersection(*(set(c) for c in cells)))
    rows = [[np.atleast_1d(np.asarray(c[s], float)) for c in cells] for s in seeds]
    out = []
    for row in rows:
        if len({len(v) for v in row}) != 1:
            row = [np.array([np.nanmean(v)]) for v in row]
        out.append(sum(w * v for w, v in zip(weights, row)))
    return crossed(out, bounds, level)


def slope_weights(x: list[float]) -> list[float]:
    """Weights whose contrast is the least-squares slope of the cell means against x:
    (x_k - mean x) / sum (x - mean x)^2."""
    xs = np.asarray(x, float)
    dev = xs - xs.mean()
    ss = float((dev**2).sum())
    if not ss > 0:
        raise ValueError(f"slope_weights: expected at least two distinct x values, got {list(x)}")
    return [float(d / ss) for d in dev]


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down; family-wise error <= alpha when adjusted p <= alpha).
    NaN entries are not tests: they stay NaN and do not count in the family."""
    idx = [i for i, p in enumerate(pvalues) if math.isfinite(p)]
    out = [math.nan] * len(pvalues)
    m, running = len(idx), 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def describe_power(d: Estimate, alpha: float = ALPHA) -> str:
    """ "MDE ±x at S x P (alpha); the observed difference needs N seeds for 80% power"."""
    c = d.components
    if c is None or not math.isfinite(d.mean) or c.seeds < 2:
        return "power not estimable (fewer than 2 seeds)"
    design = f"{c.seeds} seeds" + (f" x {c.prompts} prompts" if c.prompts > 1 else "")
    text = (
        f"minimum detectable difference ±{c.mde(alpha=alpha):.3g} ({int(POWER * 100)}% power, "
        f"alpha {alpha:.3g}, {design})"
    )
    n = c.seeds_for(d.mean, alpha=alpha)
    if n is None:
        more = "; more prompts would" if c.prompts > 1 and c.prompt > 0 else ""
        return (
            text
            + f"; no number of seeds up to {MAX_SEEDS} detects the observed {d.mean:+.3g}{more}"
        )
    return text + f"; the observed {d.mean:+.3g} needs {n} seeds for {int(POWER * 100)}% power"
