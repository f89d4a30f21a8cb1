"""Scaling curves of a model-size ablation: each metric against log10 of the model's
non-embedding parameters, as a least-squares slope per decade with its crossed seed x prompt
interval (harness.stats.contrast with slope weights, so the sizes are paired by seed and prompt),
and the slope as a share of the smallest model's headroom (ceiling minus its mean; ceiling: the
`ref:real` row, else the metric's upper bound), which puts metrics of different scales on one
footing: "scale helps semantics more than quality" reads as a larger share for the semantic
metrics.

Parameter counts come from the train stage's record (`stages/train/done.json`,
`non_embedding_parameters`), written from the model that was trained.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness import stats
from harness.comparison import (
    Claim,
    _better_if_positive,
    _fmt_p,
    _trained,
    headline_values,
    metric_range,
)
from harness.store import read_json_or_none

CEILING = "ref:real"  # the reference row whose value is a metric's ceiling
SLOPE_ARM = "slope per decade of parameters"  # the arm a slope's test names in verdict.json
SHARE_GAP = "share of headroom per decade"  # the metric of the first group minus the second's


def parameters(df: pd.DataFrame) -> dict[str, int]:
    """{arm: non-embedding parameters} from the train stage records of the arm's finished runs."""
    out: dict[str, int] = {}
    for _, r in _trained(df).iterrows():
        done = read_json_or_none(
            Path(str(r["run_dir"])) / "stages" / "train" / "done.json", "its model size is unknown"
        )
        count = done.get("non_embedding_parameters") if isinstance(done, dict) else None
        if isinstance(count, int) and count > 0:
            out.setdefault(str(r["arm"]), count)
    return out


def fits(df: pd.DataFrame, summary: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """One row per metric of `groups` ({group: metrics}): group, metric, smallest model's mean,
    ceiling, slope per decade of parameters (an Estimate) and the slope as a share of headroom;
    Holm over every slope in the table. Empty with fewer than 2 sizes."""
    sizes = parameters(df)
    arms = sorted(sizes, key=sizes.get)
    if len({sizes[a] for a in arms}) < 2:
        return pd.DataFrame()
    weights = stats.slope_weights([math.log10(sizes[a]) for a in arms])
    rows = []
    for group, metrics in groups.items():
        for m in metrics:
            vals = headline_values(df, m)
            if not all(a in vals for a in arms):
                continue
            lo, hi = metric_range(m)
            total = sum(abs(w) for w in weights)
            slope = stats.contrast(
                [vals[a] for a in arms], weights, (total * (lo - hi), total * (hi - lo))
            )
            small = stats.crossed(list(vals[arms[0]].values()), (lo, hi))
            ceiling = _ceiling(summary, m, hi)
            room = ceiling - small.mean if math.isfinite(ceiling) else math.nan
            rows.append(
                {
                    "group": group,
                    "metric": m,
                    "smallest": small.mean,
                    "ceiling": ceiling,
                    "slope": slope,
                    "share of headroom per decade": slope.mean / room
                    if room and math.isfinite(room) and room > 0
                    else math.nan,
                }
            )
    out = pd.DataFrame(rows)
    if len(out):
        out["p (Holm)"] = stats.holm([e.p for e in out["slope"]])
    return out


def share_gap(df: pd.DataFrame, fitted: pd.DataFrame) -> Claim | None:
    """The first group's mean share of headroom per decade minus the second's ("scale helps
    semantics more than quality"), one contrast over every (size, metric) cell paired by seed and
    prompt: weight slope_weight / (headroom x metrics in its group), minus for the second group.
    The headrooms are taken as known (the smallest model's means), so the interval leaves out
    their own noise. None unless `fitted` has exactly two groups, each with a metric whose
    headroom is positive."""
    groups = list(dict.fromkeys(fitted["group"])) if len(fitted) else []
    ok = fitted[fitted["share of headroom per decade"].notna()] if len(fitted) else fitted
    if len(groups) != 2 or any((ok["group"] == g).sum() == 0 for g in groups):
        return None
    sizes = parameters(df)
    arms = sorted(sizes, key=sizes.get)
    slope = stats.slope_weights([math.log10(sizes[a]) for a in arms])
    cells, weights = [], []
    for sign, group in zip((1.0, -1.0), groups):
        rows = ok[ok["group"] == group]
        for _, r in rows.iterrows():
            vals = headline_values(df, str(r["metric"]))
            room = float(r["ceiling"]) - float(r["smallest"])
            cells += [vals[a] for a in arms]
            weights += [sign * w / (room * len(rows)) for w in slope]
    gap = stats.contrast(cells, weights)
    return Claim(SLOPE_ARM, "final", SHARE_GAP, gap, True, where=f"{groups[0]} - {groups[1]}")


def claims(fitted: pd.DataFrame) -> list[Claim]:
    """Each slope of `fits` as a test of the verdict (arm `SLOPE_ARM`, the metric, p Holm-adjusted
    over the table), for verdict.json: positive in the metric's better direction is "better"."""
    return [
        Claim(
            SLOPE_ARM,
            "final",
            str(r["metric"]),
            r["slope"],
            _better_if_positive(str(r["metric"]), "final"),
            where=str(r["group"]),
            p_adj=float(r["p (Holm)"]),
        )
        for _, r in fitted.iterrows()
    ]


def _ceiling(summary: pd.DataFrame, metric: str, high: float) -> float:
    col = f"{metric}.mean"
    row = summary[summary["arm"] == CEILING] if "arm" in summary else summary.iloc[:0]
    if col in summary and len(row) and math.isfinite(float(row[col].iloc[0])):
        return float(row[col].iloc[0])
    return high


def table(fitted: pd.DataFrame) -> pd.DataFrame:
    """`fits` for the report: the slope with its 95% interval, p and the headroom share."""
    return pd.DataFrame(
        {
            "group": fitted["group"],
            "metric": fitted["metric"],
            "smallest model": fitted["smallest"],
            "ceiling": fitted["ceiling"],
            "slope per decade [95%]": [e.fmt(signed=True) for e in fitted["slope"]],
            "p (Holm)": [_fmt_p(p) for p in fitted["p (Holm)"]],
            "share of headroom per decade": fitted["share of headroom per decade"],
        }
    )


def verdict(fitted: pd.DataFrame, gap: Claim | None = None) -> str:
    """One sentence per group: the mean headroom share of its metrics and which slopes are
    significant (Holm over the table); then the gap between the groups' shares (`share_gap`)."""
    parts = []
    for group, g in fitted.groupby("group", sort=False):
        share = (
            float(np.nanmean(g["share of headroom per decade"]))
            if g["share of headroom per decade"].notna().any()
            else math.nan
        )
        sig = [
            f"{m} {e.fmt(signed=True)}"
            for m, e, p in zip(g["metric"], g["slope"], g["p (Holm)"])
            if p <= stats.ALPHA
        ]
        parts.append(
            f"{group}: mean share of headroom per decade {share:+.2f}; "
            + (
                f"significant slopes (Holm): {'; '.join(sig)}"
                if sig
                else "no slope significant (Holm)"
            )
        )
    return (
        "Scaling (slope of each metric against log10 non-embedding parameters, paired by seed and "
        "prompt): "
        + ". ".join(parts)
        + "."
        + (
            f" {gap.where} share of headroom per decade: {gap.difference.fmt(signed=True)} "
            f"(95% interval, headrooms taken as known; p {_fmt_p(gap.p)}): {gap.call()}."
            if gap is not None
            else ""
        )
    )
