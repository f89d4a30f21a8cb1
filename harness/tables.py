"""Result tables: per-arm mean and 95% CI over seeds, reference rows, paper reference columns.

Input is the per-run frame of `harness.store.load_results` (columns `arm`, `seed`, `state`,
`metric.<name>`, `param.<key>`). Only finished runs (state "done") enter the statistics; a
metric's CI is the two-sided 95% Student-t interval mean +- t_{0.975, n-1} * s / sqrt(n) with
s the sample standard deviation (ddof=1), blank for n = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy import stats

REFERENCE_ROLES = {
    "ref:real": "ceiling (real clips)",
    "ref:reconstruction": "ceiling (tokenizer limit)",
    "ref:shuffled": "floor (shuffled prompts)",
    "ref:random": "floor (random tokens)",
}

PAPER_NOTE = "paper, full scale (VBench / DPG-Bench), not comparable with the shapes benchmark"



@dataclass(frozen=True)
class PaperFigure:
    """One full-scale figure from the paper; `arm` names the matching arm of the spec, if any."""

    label: str
    value: float
    arm: str | None = None
    note: str = ""


_T2V, _I2V, _DPG = "VBench T2V total", "VBench++ I2V total", "DPG-Bench overall"
_MAIN = (PaperFigure(_T2V, 82.4, note="URSA; Emu3 81.0, Wan2.1 83.7"),
         PaperFigure("VBench T2V dynamic degree", 81.4, note="URSA; HunyuanVideo 70.8"))

# docs/math.md "Reported results", keyed by spec name; arms are the harness's "key=value" names.
PAPER_FIGURES: dict[str, tuple[PaperFigure, ...]] = {
    "path_shape": (PaperFigure(_T2V, 69.0, "path.kind=masked", "masked diffusion (approx.)"),
                   PaperFigure(_T2V, 82.4, "path.kind=metric", "metric path (URSA)"),
                   PaperFigure("mixture vs masked", math.nan, "path.kind=mixture", "mixture path > masked (no figure)")),
    "timestep_shift": (PaperFigure(_T2V, 81.2, "train.shift=3, train.shift_rule=fixed", "shift lambda = 3"),
                       *_MAIN[:1]),
    "path_search": _MAIN[:1],
    "model_scale": (*_MAIN[:1], PaperFigure(_T2V, 80.5, note="4B model (scaling helps semantics)")),
    "frame_schedule": (PaperFigure(_T2V, 82.4, "train.frame_schedule=async", "URSA, async frame timesteps"),
                       PaperFigure(_I2V, 86.2, "train.frame_schedule=async", "URSA; CogVideoX 86.7"),
                       PaperFigure(_DPG, 86.0, note="T2I; Janus-Pro 84.2, Show-o2 86.1")),
}


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Metric names (without the `metric.` prefix), in column order."""
    return [c[len("metric."):] for c in df.columns if c.startswith("metric.")]


def mean_ci(values: pd.Series | list[float], confidence: float = 0.95) -> tuple[float, float, int]:
    """(mean, CI half-width, n) over the finite values; half-width NaN when n < 2, mean NaN when n = 0."""
    x = pd.to_numeric(pd.Series(values, dtype=float), errors="coerce").dropna()
    x = x[x.map(math.isfinite)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, 1
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half, n


def arm_role(arm: str) -> str:
    """"floor"/"ceiling" label for reference generator arms, "arm" for trained ones."""
    return REFERENCE_ROLES.get(arm, "arm")


def summarise(df: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per arm: role, runs (done / total), failed, params, then `<m>.mean`, `<m>.ci95`, `<m>.n`.

    Trained arms come first in the order they appear, reference rows last (real, reconstruction,
    shuffled, random).
    """
    metrics = metrics if metrics is not None else metric_columns(df)
    param_cols = [c for c in df.columns if c.startswith("param.")]
    rows: list[dict[str, Any]] = []
    for arm, group in df.groupby("arm", sort=False, dropna=False):
        done = group[group["state"] == "done"]
        row: dict[str, Any] = {"arm": arm, "role": arm_role(str(arm)), "runs": f"{len(done)}/{len(group)}",
                               "failed": int((group["state"] == "failed").sum())}
        for col in param_cols:
            vals = group[col].dropna().unique()
            row[col] = vals[0] if len(vals) == 1 else None
        for m in metrics:
            col = f"metric.{m}"
            mean, half, n = mean_ci(done[col]) if col in done else (math.nan, math.nan, 0)
            row.update({f"{m}.mean": mean, f"{m}.ci95": half, f"{m}.n": n})
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    order = {arm: i for i, arm in enumerate(REFERENCE_ROLES)}
    out["_order"] = [order.get(a, -1) for a in out["arm"]]
    return out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


def paper_figures(spec_name: str, configured: dict[str, dict[str, float]] | None = None) -> list[PaperFigure]:
    """The spec's `report.paper` ({label: {arm: value}}) if given, else the built-in figures for that spec."""
    if configured:
        return [PaperFigure(label, float(v), arm) for label, per_arm in configured.items() for arm, v in per_arm.items()]
    return list(PAPER_FIGURES.get(spec_name, ()))


def arm_matches(pattern: str, arm: str) -> bool:
    """True when every "key=value" part of `pattern` is a part of `arm` ("a=1" matches "a=1, b=2")."""
    return set(pattern.split(", ")) <= set(arm.split(", "))


def with_paper(summary: pd.DataFrame, figures: list[PaperFigure]) -> pd.DataFrame:
    """Append one `<label> (paper, full scale)` column per label with an arm-matched finite figure."""
    out = summary.copy()
    if out.empty:
        return out
    matched = [f for f in figures if f.arm is not None and math.isfinite(f.value)]
    for label in dict.fromkeys(f.label for f in matched):
        column = [next((f.value for f in matched if f.label == label and arm_matches(f.arm, str(a))), math.nan)
                  for a in out["arm"]]
        out[f"{label} (paper, full scale; not comparable)"] = column
    return out


def paper_table(figures: list[PaperFigure]) -> pd.DataFrame:
    """The paper's figures as their own table (figure, value, matching arm, note)."""
    return pd.DataFrame([{"figure": f.label, "value (paper, full scale)": "" if math.isnan(f.value) else f"{f.value:g}",
                          "arm": f.arm or "—", "note": f.note} for f in figures],
                        columns=["figure", "value (paper, full scale)", "arm", "note"])


def fmt_mean_ci(mean: float, half: float, digits: int = 4) -> str:
    """"0.512 ± 0.031" (CI blank for n = 1, "—" for no value)."""
    if mean is None or not math.isfinite(mean):
        return "—"
    text = f"{mean:.{digits}g}"
    return text if half is None or not math.isfinite(half) else f"{text} ± {half:.2g}"


def metric_groups(metrics: list[str]) -> dict[str, list[str]]:
    """Metrics by task, in order: "i2v.alignment" -> "i2v"; unprefixed names are text-to-video
    (the stages prefix every other task) or training metrics, grouped as "t2v"."""
    groups: dict[str, list[str]] = {}
    for m in metrics:
        task, _, _ = m.rpartition(".")
        groups.setdefault(task or "t2v", []).append(m)
    return groups


def display_table(summary: pd.DataFrame, metrics: list[str], paper: bool = True) -> pd.DataFrame:
    """Human table: arm, role, runs, then one "mean ± ci" cell per metric and (paper=True) the
    paper columns."""
    if summary.empty:
        return pd.DataFrame(columns=["arm", "role", "runs"])
    out = summary[["arm", "role", "runs"]].copy()
    for m in metrics:
        out[m] = [fmt_mean_ci(a, b) for a, b in zip(summary[f"{m}.mean"], summary[f"{m}.ci95"])]
    for col in summary.columns if paper else []:
        if "(paper, full scale" in col:
            out[col] = [("" if not math.isfinite(v) else f"{v:g}") for v in summary[col]]
    return out
