"""The comparison a report leads with: the spec's headline metric per arm at the end of training
and over the learning curve, paired against a baseline arm, and the denoising diagnostic.

Inputs are the per-run frame of `harness.store.load_results` and the files the score stage
writes beside each run (`stages/score/clips.json`: per-clip values of the final samples;
`stages/score/curve.json`: metrics at every learning-curve point).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness import stats
from harness.plugins import metric_info
from harness.tables import arm_matches

DENOISE = "denoise_ce@t="


def _trained(df: pd.DataFrame) -> pd.DataFrame:
    """Finished runs of trained / evaluated arms (reference rows excluded)."""
    if df.empty:
        return df
    ref = df["reference"].notna() if "reference" in df else df["arm"].astype(str).str.startswith("ref:")
    return df[(df["state"] == "done") & ~ref]


def _read(run_dir: str, name: str) -> dict:
    path = Path(run_dir) / "stages" / "score" / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def headline_values(df: pd.DataFrame, metric: str) -> dict[str, dict[int, np.ndarray]]:
    """{arm: {seed: per-clip values of `metric`}} (one value per seed when clips were not kept)."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for _, r in _trained(df).iterrows():
        clips = _read(r["run_dir"], "clips.json").get(metric)
        value = r.get(f"metric.{metric}")
        if clips:
            values = np.asarray(clips, dtype=float)
        elif value is not None and math.isfinite(value):
            values = np.array([float(value)])
        else:
            continue
        out.setdefault(str(r["arm"]), {})[int(r["seed"])] = values
    return out


def curve_frame(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Long frame arm, seed, step, value of `metric` at every learning-curve point."""
    rows = []
    for _, r in _trained(df).iterrows():
        for step, metrics in _read(r["run_dir"], "curve.json").items():
            if metric in metrics:
                rows.append({"arm": str(r["arm"]), "seed": int(r["seed"]), "step": int(step),
                             "value": float(metrics[metric])})
    return pd.DataFrame(rows, columns=["arm", "seed", "step", "value"])


def curve_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """arm, step, mean, low, high: the curve's seed-level bootstrap band."""
    rows = []
    for (arm, step), g in curves.groupby(["arm", "step"], sort=False):
        e = stats.bootstrap(list(g["value"]))
        rows.append({"arm": arm, "step": step, "mean": e.mean, "low": e.low, "high": e.high, "seeds": e.seeds})
    return pd.DataFrame(rows, columns=["arm", "step", "mean", "low", "high", "seeds"]).sort_values(["arm", "step"])


@dataclass
class Comparison:
    """The verdict paragraphs and the per-seed table of a spec's headline metric."""

    verdicts: list[str]
    per_seed: pd.DataFrame
    estimates: dict[str, stats.Estimate]
    diffs: dict[str, stats.Estimate]  # each arm minus the baseline, paired


def compare(df: pd.DataFrame, metric: str, baseline: str | None) -> Comparison:
    """Headline `metric` per arm (end of training and area under the learning curve), each arm
    paired against `baseline` (default: the first arm)."""
    info = metric_info(metric)
    higher = info.higher_is_better if info is not None else True
    values = headline_values(df, metric)
    if not values:
        return Comparison([f"No finished run reports the headline metric {metric!r}."], pd.DataFrame(), {})
    arms = list(values)
    base = next((a for a in arms if baseline and arm_matches(baseline, a)), arms[0])
    final = {a: stats.bootstrap(list(v.values())) for a, v in values.items()}
    diffs = {a: stats.paired_difference(values[a], values[base]) for a in arms if a != base}
    verdicts = [stats.verdict_sentence(metric, higher, final, base, diffs, "End of training")]
    curves = curve_frame(df, metric)
    if curves["step"].nunique() > 1:  # area under the curve: the mean over its points, per run
        auc = curves.groupby(["arm", "seed"])["value"].mean()
        per_arm = {a: {s: np.array([v]) for (aa, s), v in auc.items() if aa == a} for a in arms}
        per_arm = {a: v for a, v in per_arm.items() if v}
        if base in per_arm:
            verdicts.append(stats.verdict_sentence(
                f"{metric} averaged over the curve's {curves['step'].nunique()} points", higher,
                {a: stats.bootstrap(list(v.values())) for a, v in per_arm.items()}, base,
                {a: stats.paired_difference(per_arm[a], per_arm[base]) for a in per_arm if a != base},
                "Over the learning curve"))
    seeds = sorted({s for v in values.values() for s in v})
    per_seed = pd.DataFrame([{"arm": a, **{f"seed {s}": float(np.mean(values[a][s])) if s in values[a] else math.nan
                                           for s in seeds}, "mean [95% CI]": final[a].fmt()} for a in arms])
    return Comparison(verdicts, per_seed, final, diffs)


def compare_within(df: pd.DataFrame, metric: str, baseline: str | None, key: str,
                   partners: tuple[str, ...] = ()) -> Comparison:
    """`compare` separately for each value of axis `key` (e.g. clip length), then one sentence on
    how each arm's paired difference against the baseline moves along that axis (`partners`: the
    axes zipped with `key`, left out of the arm names that sentence follows)."""
    col = f"param.{key}"
    if col not in df:
        return compare(df, metric, baseline)
    trained = _trained(df)
    levels = list(dict.fromkeys(int(v) if isinstance(v, float) and v.is_integer() else v
                                for v in trained[col] if v is not None and v == v))
    try:
        levels.sort()
    except TypeError:
        pass
    verdicts, tables, estimates, gaps = [], [], {}, {}
    for level in levels:
        part = compare(df[(df[col] == level) | df["reference"].notna()], metric, baseline)
        verdicts += [f"{key}={level}. {v}" for v in part.verdicts]
        tables.append(part.per_seed)
        estimates.update(part.estimates)
        for arm, d in part.diffs.items():
            gaps.setdefault(_without(arm, (key, *partners)), {})[level] = d
    for arm, by_level in gaps.items():
        ends = [by_level[lv] for lv in levels if lv in by_level]
        trend = ""
        if len(ends) >= 2:
            first, last = ends[0], ends[-1]
            overlap = first.low <= last.high and last.low <= first.high
            trend = (" The intervals at the two ends overlap: no evidence that the gap changes with "
                     f"{key}." if overlap else f" The intervals at the two ends do not overlap: the gap changes "
                     f"with {key}.")
        verdicts.append(f"Paired difference of {arm} against the baseline along {key}: " + "; ".join(
            f"{lv}: {d.fmt(signed=True)}" for lv, d in by_level.items()) + "." + trend)
    per_seed = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return Comparison(verdicts, per_seed, estimates, {})


def _without(arm: str, keys: tuple[str, ...]) -> str:
    """An arm label without the `key=value` parts of `keys` ("path.kind=metric, frames=8" -> "path.kind=metric")."""
    return ", ".join(p for p in arm.split(", ") if p.split("=")[0] not in keys) or arm


def denoise_table(df: pd.DataFrame) -> pd.DataFrame:
    """arm x noise level: held-out cross-entropy, mean over seeds (lower: that level is easier)."""
    done = _trained(df)
    cols = sorted((c for c in done.columns if c.startswith(f"metric.{DENOISE}")),
                  key=lambda c: float(c.rpartition("=")[2]))
    if not cols:
        return pd.DataFrame()
    out = done.groupby("arm", sort=False)[cols].mean()
    out.columns = [f"t={c.rpartition('=')[2]}" for c in cols]
    return out.reset_index()
