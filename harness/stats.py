"""Comparisons a reviewer accepts: bootstrap intervals that stay inside a metric's range, paired
differences between arms, and a plain verdict.

An arm's value is the mean over seeds of the mean over evaluation prompts. Its interval is a
two-stage percentile bootstrap: resample seeds, then prompts within each drawn seed, so both
sources of variation are in it; percentiles of resampled means never leave the range of the data
(a proportion's interval stays in [0, 1], unlike a t-interval on three seeds). Arms are compared
on paired differences: every arm sees the same prompts for a seed (the benchmark's suite is fixed),
so seeds and prompts are resampled jointly for both arms and the interval is that of the mean
difference. "Significant" means the 95% interval of the difference excludes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
N_BOOT = 4000


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap interval over `seeds` seeds and `clips` prompts per seed."""

    mean: float
    low: float
    high: float
    seeds: int
    clips: int

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (for a difference)."""
        return self.low > 0 or self.high < 0

    def fmt(self, digits: int = 3, signed: bool = False) -> str:
        if not math.isfinite(self.mean):
            return "—"
        sign = "+" if signed else ""
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.seeds * self.clips < 2:
            return f"{self.mean:{sign}.{digits}g}"
        return f"{self.mean:{sign}.{digits}g} [{self.low:{sign}.{digits}g}, {self.high:{sign}.{digits}g}]"


NAN = Estimate(math.nan, math.nan, math.nan, 0, 0)


def _as_matrix(per_seed: list[np.ndarray | list[float] | float]) -> np.ndarray:
    """(S, N) matrix of per-seed, per-clip values; a seed with one value per clip-set counts as N = 1."""
    rows = [np.atleast_1d(np.asarray(v, dtype=float)) for v in per_seed]
    n = {len(r) for r in rows}
    if len(n) != 1:  # unequal prompt counts: fall back to per-seed means
        rows = [np.array([r.mean()]) for r in rows]
    return np.stack(rows) if rows else np.zeros((0, 1))


def bootstrap(per_seed: list[np.ndarray | list[float] | float], n_boot: int = N_BOOT, seed: int = 0,
              level: float = LEVEL) -> Estimate:
    """Mean over seeds of per-seed clip means, with its two-stage percentile bootstrap interval.

    per_seed: one entry per seed, each the per-clip values of that seed (or one value)."""
    x = _as_matrix(per_seed)
    x = x[np.isfinite(x).all(1)]
    s, n = x.shape if x.size else (0, 0)
    if s == 0:
        return NAN
    mean = float(x.mean())
    if s * n < 2:
        return Estimate(mean, math.nan, math.nan, s, n)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, s, size=(n_boot, s))
    clips = rng.integers(0, n, size=(n_boot, s, n))
    means = x[seeds[..., None], clips].mean((1, 2))
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(mean, float(low), float(high), s, n)


def paired_difference(a: dict[int, np.ndarray], b: dict[int, np.ndarray], **kw) -> Estimate:
    """a - b on the seeds both have ({seed: per-clip values}), clip by clip (same prompts)."""
    common = sorted(set(a) & set(b))
    diffs = []
    for s in common:
        x, y = np.atleast_1d(np.asarray(a[s], float)), np.atleast_1d(np.asarray(b[s], float))
        diffs.append(x - y if len(x) == len(y) else np.array([x.mean() - y.mean()]))
    return bootstrap(diffs, **kw)


def verdict_sentence(metric: str, higher_is_better: bool, arms: dict[str, Estimate], baseline: str,
                     diffs: dict[str, Estimate], where: str) -> str:
    """One paragraph: who leads on `metric` at `where`, and each arm against the baseline."""
    finite = {a: e for a, e in arms.items() if math.isfinite(e.mean)}
    if not finite:
        return f"{where}: no finished runs to compare."
    best = (max if higher_is_better else min)(finite, key=lambda a: finite[a].mean)
    e = finite[best]
    sample = f"{e.seeds} seeds" + (f" x {e.clips} prompts" if e.clips > 1 else "")
    text = (f"{where}: {best} has the {'highest' if higher_is_better else 'lowest'} mean {metric}, {e.fmt()} "
            f"({'higher' if higher_is_better else 'lower'} is better; {sample}; {int(LEVEL * 100)}% bootstrap "
            f"intervals).")
    against = []
    for arm, d in diffs.items():
        if math.isfinite(d.mean):
            better = (d.mean > 0) == higher_is_better
            call = f"{'better' if better else 'worse'}, significant" if d.significant else "no significant difference"
            against.append(f"{arm} {d.fmt(signed=True)} ({call})")
    if baseline in finite and against:
        text += f" Paired differences against {baseline} ({finite[baseline].fmt()}): " + "; ".join(against) + "."
    return text
