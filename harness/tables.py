"""Result tables: per-arm mean and 95% CI over seeds, reference rows, paper reference columns.

Input is the per-run frame of `harness.store.load_results` (columns `arm`, `seed`, `state`,
`metric.<name>`, `param.<key>`). Only finished runs (state "done") enter the statistics; a
metric's interval is the 95% seed-level t interval (harness.stats), clipped to the metric's
declared range; blank for one seed. The headline comparison (harness.comparison) also counts the
prompts, crossed with seeds, and pairs arms.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness import stats
from harness.plugins import metric_info

REFERENCE_ROLES = {
    "ref:real": "ceiling (real clips)",
    "ref:reconstruction": "ceiling (tokenizer limit)",
    "ref:static": "degenerate (first frame repeated)",
    "ref:memoriser": "degenerate (nearest training clip)",
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
_MAIN = (
    PaperFigure(_T2V, 82.4, note="URSA; Emu3 81.0, Wan2.1 83.7"),
    PaperFigure("VBench T2V dynamic degree", 81.4, note="URSA; HunyuanVideo 70.8"),
)

# docs/math.md "Reported results", keyed by spec name; arms are the spec's arm labels.
PAPER_FIGURES: dict[str, tuple[PaperFigure, ...]] = {
    "path_shape": (
        PaperFigure(_T2V, 69.0, "masked", "masked diffusion (approx.)"),
        PaperFigure(_T2V, 82.4, "linearised metric", "metric path (URSA)"),
        PaperFigure("mixture vs masked", math.nan, "mixture", "mixture path > masked (no figure)"),
    ),
    "timestep_shift": (
        PaperFigure(_T2V, 81.2, "train.shift=3, train.shift_rule=fixed", "shift lambda = 3"),
        *_MAIN[:1],
    ),
    "path_search": _MAIN[:1],
    "model_scale": (*_MAIN[:1], PaperFigure(_T2V, 80.5, note="4B model (scaling helps semantics)")),
    "frame_schedule": (
        PaperFigure(_T2V, 82.4, "train.frame_schedule=async", "URSA, async frame timesteps"),
        PaperFigure(_I2V, 86.2, "train.frame_schedule=async", "URSA; CogVideoX 86.7"),
        PaperFigure(_DPG, 86.0, note="T2I; Janus-Pro 84.2, Show-o2 86.1"),
    ),
}


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Metric names (without the `metric.` prefix), in column order."""
    return [c[len("metric.") :] for c in df.columns if c.startswith("metric.")]


def mean_interval(
    values: pd.Series | list[float], bounds: tuple[float, float] = (-math.inf, math.inf)
) -> stats.Estimate:
    """Mean over the finite values (one per seed) with its seed-level t interval (harness.stats;
    no interval for n = 1, NaN for n = 0)."""
    x = pd.to_numeric(pd.Series(values, dtype=float), errors="coerce").dropna()
    return stats.seed_level([float(v) for v in x if math.isfinite(v)], bounds)


def arm_role(arm: str) -> str:
    """ "ceiling"/"degenerate"/"floor" label for reference generator arms ("ref:real", or
    "ref:real, <data axis>=<value>" where the spec's arms use several data sets), "arm" for
    trained ones."""
    return REFERENCE_ROLES.get(arm.split(", ")[0], "arm")


def summarise(df: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per arm: role, runs (done / total), failed, params, then `<m>.mean`, `<m>.low`,
    `<m>.high` (95% seed-level t interval) and `<m>.n`.

    Trained arms come first in the order they appear, reference rows last (real, reconstruction,
    static, memoriser, shuffled, random).
    """
    metrics = metrics if metrics is not None else metric_columns(df)
    param_cols = [c for c in df.columns if c.startswith("param.")]
    rows: list[dict[str, Any]] = []
    for arm, group in df.groupby("arm", sort=False, dropna=False):
        done = group[group["state"] == "done"]
        row: dict[str, Any] = {
            "arm": arm,
            "role": arm_role(str(arm)),
            "runs": f"{len(done)}/{len(group)}",
            "failed": int((group["state"] == "failed").sum()),
        }
        for col in param_cols:
            # an axis value may be a mapping or list (e.g. model.overrides): compared as its repr
            vals = list(
                dict.fromkeys(
                    v if isinstance(v, Hashable) else repr(v) for v in group[col].dropna()
                )
            )
            row[col] = vals[0] if len(vals) == 1 else None
        for m in metrics:
            col = f"metric.{m}"
            info = metric_info(m)
            e = (
                mean_interval(done[col], (info.low, info.high) if info else (-math.inf, math.inf))
                if col in done
                else stats.NAN
            )
            row.update(
                {f"{m}.mean": e.mean, f"{m}.low": e.low, f"{m}.high": e.high, f"{m}.n": e.seeds}
            )
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    order = {arm: i for i, arm in enumerate(REFERENCE_ROLES)}
    out["_order"] = [order.get(str(a).split(", ")[0], -1) for a in out["arm"]]
    return out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


def paper_figures(
    spec_name: str, configured: dict[str, dict[str, float]] | None = None
) -> list[PaperFigure]:
    """The spec's `report.paper` ({label: {arm: value}}) if given, else the built-in figures for that spec."""
    if configured:
        return [
            PaperFigure(label, float(v), arm)
            for label, per_arm in configured.items()
            for arm, v in per_arm.items()
        ]
    return list(PAPER_FIGURES.get(spec_name, ()))


def arm_matches(pattern: str, arm: str) -> bool:
    """True when every "key=value" part of `pattern` is a part of `arm` ("a=1" matches "a=1, b=2")."""
    return set(pattern.split(", ")) <= set(arm.split(", "))


def paper_table(figures: list[PaperFigure]) -> pd.DataFrame:
    """The paper's figures as their own table (figure, value, matching arm, note)."""
    return pd.DataFrame(
        [
            {
                "figure": f.label,
                "value (paper, full scale)": "" if math.isnan(f.value) else f"{f.value:g}",
                "arm": f.arm or "—",
                "note": f.note,
            }
            for f in figures
        ],
        columns=["figure", "value (paper, full scale)", "arm", "note"],
    )


def metric_groups(metrics: list[str]) -> dict[str, list[str]]:
    """Metrics by task, in order: "i2v.alignment" -> "i2v"; unprefixed names are text-to-video
    (the stages prefix every other task) or training metrics, grouped as "t2v". Qualified values
    (`denoise_ce@t=0.05`) are left out: they have tables of their own."""
    from harness.plugins import TASKS

    groups: dict[str, list[str]] = {}
    for m in metrics:
        if "@" in m:
            continue
        head, _, rest = m.partition(".")
        groups.setdefault(head if rest and head in TASKS else "t2v", []).append(m)
    return groups


def display_table(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Human table: arm, role, runs, then one "mean [low, high]" cell per metric (measured values
    only: the paper's figures have their own table)."""
    if summary.empty:
        return pd.DataFrame(columns=["arm", "role", "runs"])
    out = summary[["arm", "role", "runs"]].copy()
    for m in metrics:
        out[m] = [
            stats.Estimate(a, lo, hi, int(n), 1).fmt(4)
            for a, lo, hi, n in zip(
                summary[f"{m}.mean"], summary[f"{m}.low"], summary[f"{m}.high"], summary[f"{m}.n"]
            )
        ]
    return out
