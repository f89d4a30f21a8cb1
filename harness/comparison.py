"""The comparison a report leads with: a pre-declared primary endpoint tested alone, then every
other comparison of the spec's headline metric Holm-corrected over the family the report shows,
each with its power at the spec's seeds and prompts.

Inputs are the per-run frame of `harness.store.load_results` and the files the score stage
writes beside each run (`stages/score/clips.json`: per-clip values of the final samples;
`stages/score/curve.json`: metrics at every learning-curve point; `curve_clips.json`: per-clip
values at every point). Statistics of a run: `final` (end of training, per prompt), `curve_mean`
(the mean over the learning curve's points, per prompt where curve_clips.json exists, else per
run) and `steps_to` (steps until the run's curve reaches a level, per run; see `steps_to`).
Intervals are harness.stats': crossed seed x prompt t intervals, seed-level t for one value per run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import stats
from harness.plugins import metric_info
from harness.tables import arm_matches

DENOISE = "denoise_ce@t="
Values = dict[str, dict[int, np.ndarray]]  # {arm: {seed: per-prompt values (or one value)}}


def _trained(df: pd.DataFrame) -> pd.DataFrame:
    """Finished runs of trained / evaluated arms (reference rows excluded)."""
    if df.empty:
        return df
    ref = (
        df["reference"].notna()
        if "reference" in df
        else df["arm"].astype(str).str.startswith("ref:")
    )
    return df[(df["state"] == "done") & ~ref]


def _read(run_dir: str, name: str) -> dict:
    path = Path(run_dir) / "stages" / "score" / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def headline_values(df: pd.DataFrame, metric: str) -> Values:
    """{arm: {seed: per-clip values of `metric`}} (one value per seed when clips were not kept)."""
    out: Values = {}
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
                rows.append(
                    {
                        "arm": str(r["arm"]),
                        "seed": int(r["seed"]),
                        "step": int(step),
                        "value": float(metrics[metric]),
                    }
                )
    return pd.DataFrame(rows, columns=["arm", "seed", "step", "value"])


def curve_summary(
    curves: pd.DataFrame, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> pd.DataFrame:
    """arm, step, mean, low, high: the curve's seed-level t band (one value per run and point)."""
    rows = []
    for (arm, step), g in curves.groupby(["arm", "step"], sort=False):
        e = stats.seed_level(list(g["value"]), bounds)
        rows.append(
            {
                "arm": arm,
                "step": step,
                "mean": e.mean,
                "low": e.low,
                "high": e.high,
                "seeds": e.seeds,
            }
        )
    return pd.DataFrame(rows, columns=["arm", "step", "mean", "low", "high", "seeds"]).sort_values(
        ["arm", "step"]
    )


def steps_to(points: list[tuple[int, float]], level: float, higher: bool) -> tuple[float, bool]:
    """(steps until a curve first reaches `level`, whether it did): linear between the snapshots
    around the crossing; the first point's step when it starts there; the last point's step,
    reached False, when it never does (a lower bound on the run's true steps)."""
    pts = sorted(points)
    prev = None
    for step, value in pts:
        if (value >= level) if higher else (value <= level):
            if prev is None or prev[1] == value:
                return float(step), True
            frac = (level - prev[1]) / (value - prev[1])
            return float(prev[0] + frac * (step - prev[0])), True
        prev = (step, value)
    return (float(pts[-1][0]) if pts else math.nan), False


def statistic_values(
    df: pd.DataFrame, metric: str, statistic: str, level: float | None = None
) -> tuple[Values, str]:
    """{arm: {seed: values}} of one statistic of `metric` per run, and a note for the report
    (e.g. how many runs never reached a steps_to level)."""
    if statistic == "final":
        return headline_values(df, metric), ""
    info = metric_info(metric)
    higher = info.higher_is_better if info is not None else True
    out: Values = {}
    censored = 0
    per_run_curve = 0
    for _, r in _trained(df).iterrows():
        curve = {
            int(s): m[metric] for s, m in _read(r["run_dir"], "curve.json").items() if metric in m
        }
        if len(curve) < 2:
            continue
        if statistic == "curve_mean":
            clips = [c.get(metric) for c in _read(r["run_dir"], "curve_clips.json").values()]
            if len(clips) == len(curve) and all(clips) and len({len(c) for c in clips}) == 1:
                values = np.asarray(clips, dtype=float).mean(
                    0
                )  # per prompt, mean over the curve's points
            else:
                values, per_run_curve = (
                    np.array([float(np.mean(list(curve.values())))]),
                    per_run_curve + 1,
                )
        else:
            steps, reached = steps_to(list(curve.items()), float(level), higher)
            censored += not reached
            values = np.array([steps])
        out.setdefault(str(r["arm"]), {})[int(r["seed"])] = values
    note = ""
    if censored:
        note = (
            f"{censored} run(s) never reached {metric} {level:g}: counted at their last snapshot, "
            f"a lower "
            f"bound, so their arm's steps are understated"
        )
    if per_run_curve:
        note = (
            f"{per_run_curve} run(s) kept no per-prompt curve values: the curve mean of those runs "
            f"is one "
            f"value per run"
        )
    return out, note


STAT_LABELS = {
    "final": "at the end of training",
    "curve_mean": "averaged over the learning curve",
    "steps_to": "steps to reach {level:g}",
}


def stat_label(statistic: str, level: float | None = None) -> str:
    return STAT_LABELS[statistic].format(level=level if level is not None else math.nan)


@dataclass
class Claim:
    """One test of the verdict: `arm` minus the baseline on a statistic (at `where`, an axis value),
    or with `interaction` the change of that gap between two axis values."""

    arm: str
    statistic: str  # "final" | "curve_mean" | "steps_to"
    metric: str
    difference: stats.Estimate  # unadjusted (stats.LEVEL)
    better_if_positive: bool
    level: float | None = None  # steps_to's level
    where: str = ""  # "frames=4", or "frames 4 -> 16" for an interaction
    interaction: bool = False
    slope: bool = False  # an interaction of a slope (report.trend), not of a gap
    primary: bool = False
    p_adj: float = math.nan  # Holm-adjusted p (secondary claims and a primary of several arms)
    shown: stats.Estimate | None = None  # the interval printed (Bonferroni-adjusted in a family)
    alpha: float = stats.ALPHA  # the alpha its decision and power use

    @property
    def key(self) -> tuple:
        return (self.arm, self.statistic, self.metric, self.where, self.interaction)

    @property
    def p(self) -> float:
        return self.p_adj if math.isfinite(self.p_adj) else self.difference.p

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p) and self.p <= stats.ALPHA

    def call(self) -> str:
        d = self.difference
        if not self.significant:
            return "no significant difference"
        if self.slope:
            return f"the slope {'rises' if d.mean > 0 else 'falls'}, significant"
        if self.interaction:
            better = (d.mean > 0) == self.better_if_positive
            trend = "grows in favour of" if better else "moves against"
            return f"the gap {trend} {_first_part(self.arm)}, significant"
        return f"{'better' if (d.mean > 0) == self.better_if_positive else 'worse'}, significant"

    def label(self) -> str:
        what = f"{self.metric} {stat_label(self.statistic, self.level)}"
        return f"{self.arm}{' at ' + self.where if self.where else ''}: {what}" + (
            f" (change of the {'slope' if self.slope else 'gap'})" if self.interaction else ""
        )


def _first_part(arm: str) -> str:
    return arm.split(", ")[0]


@dataclass
class Comparison:
    """The verdict paragraphs, the per-seed table of the headline metric and the tests behind
    them."""

    verdicts: list[str]
    per_seed: pd.DataFrame = field(default_factory=pd.DataFrame)
    estimates: dict[str, stats.Estimate] = field(default_factory=dict)
    diffs: dict[str, stats.Estimate] = field(
        default_factory=dict
    )  # each arm minus the baseline, final, paired
    claims: list[Claim] = field(default_factory=list)


def _bounds(
    metric: str, statistic: str, max_step: float = math.inf
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(range of an arm's value, range of a difference) of a statistic of `metric`."""
    if statistic == "steps_to":
        return (0.0, max_step), (-max_step, max_step)
    info = metric_info(metric)
    lo, hi = (info.low, info.high) if info is not None else (-math.inf, math.inf)
    return (lo, hi), (lo - hi, hi - lo)


def metric_range(metric: str) -> tuple[float, float]:
    """The range a scorer declares for `metric` (unbounded when it declares none)."""
    return _bounds(metric, "final")[0]


def _better_if_positive(metric: str, statistic: str) -> bool:
    if statistic == "steps_to":
        return False  # fewer steps is better
    info = metric_info(metric)
    return info.higher_is_better if info is not None else True


def _primary(primary: Any, headline: str) -> tuple[str, str, float | None, str | None, str]:
    """(metric, statistic, level, arm, where it was declared) of the primary endpoint."""
    if primary is None:
        return (
            headline,
            "final",
            None,
            None,
            "report.primary not set: report.headline at the end of training",
        )
    return (
        primary.metric or headline,
        primary.statistic,
        primary.level,
        primary.arm,
        "declared in report.primary",
    )


def _baseline(arms: list[str], baseline: str | None) -> tuple[str | None, str]:
    """The baseline arm among `arms`, and a sentence when it is not the declared one."""
    if not baseline:
        return arms[0], f"report.baseline is not set: the first arm, {arms[0]}, is the baseline."
    found = [a for a in arms if arm_matches(baseline, a)]
    if not found:
        return None, (
            f"report.baseline {baseline!r} matches no arm with results ({'; '.join(arms)}): "
            f"no paired "
            f"comparison."
        )
    return found[0], ""


def headline_comparison(
    df: pd.DataFrame, metric: str, baseline: str | None, primary: Any = None
) -> Comparison:
    """The primary endpoint, then the headline `metric` at the end of training and over the learning
    curve, every arm paired against `baseline` (report.baseline), secondaries Holm-corrected."""
    values = headline_values(df, metric)
    if not values:
        return Comparison([f"No finished run reports the headline metric {metric!r}."])
    arms = list(values)
    base, why = _baseline(arms, baseline)
    if base is None:
        return Comparison([why], _per_seed(values, metric))
    p_metric, p_stat, p_level, p_arm, origin = _primary(primary, metric)
    others = [a for a in arms if a != base]
    claims, notes, means = [], [], {}
    wanted = [(metric, "final", None), (metric, "curve_mean", None)]
    if (p_metric, p_stat, p_level) not in wanted:
        wanted.insert(0, (p_metric, p_stat, p_level))
    for m, statistic, level in wanted:
        vals, note = statistic_values(df, m, statistic, level)
        if note:
            notes.append(note)
        if base not in vals:
            continue
        arm_bounds, diff_bounds = _bounds(m, statistic, _max_step(vals))
        means[(m, statistic)] = {
            a: stats.crossed(list(v.values()), arm_bounds) for a, v in vals.items()
        }
        for a in others:
            if a in vals:
                d = stats.paired_difference(vals[a], vals[base], diff_bounds)
                is_primary = (m, statistic, level) == (p_metric, p_stat, p_level) and (
                    p_arm is None or arm_matches(p_arm, a)
                )
                claims.append(
                    Claim(
                        a,
                        statistic,
                        m,
                        d,
                        _better_if_positive(m, statistic),
                        level,
                        primary=is_primary,
                    )
                )
    _decide(claims)
    verdicts = [_primary_text(claims, means, base, p_metric, p_stat, p_level, p_arm, origin)]
    if why:
        verdicts.append(why)
    for m, statistic, level in wanted:
        mine = [
            c
            for c in claims
            if (c.metric, c.statistic, c.level) == (m, statistic, level) and not c.primary
        ]
        if mine:
            verdicts.append(
                _secondary_text(
                    mine,
                    means[(m, statistic)],
                    base,
                    f"{stat_label(statistic, level).capitalize()}",
                )
            )
    verdicts.append(_method_text(claims, notes))
    final = means.get((metric, "final"), {})
    diffs = {c.arm: c.difference for c in claims if (c.metric, c.statistic) == (metric, "final")}
    return Comparison(verdicts, _per_seed(values, metric, final), final, diffs, claims)


def _max_step(vals: Values) -> float:
    return max(
        (float(np.max(v)) for by_seed in vals.values() for v in by_seed.values()), default=math.inf
    )


def _per_seed(
    values: Values, metric: str, final: dict[str, stats.Estimate] | None = None
) -> pd.DataFrame:
    """arm x seed: the mean over prompts, and the arm's mean with its interval."""
    final = final or {
        a: stats.crossed(list(v.values()), _bounds(metric, "final")[0]) for a, v in values.items()
    }
    seeds = sorted({s for v in values.values() for s in v})
    return pd.DataFrame(
        [
            {
                "arm": a,
                **{
                    f"seed {s}": float(np.mean(values[a][s])) if s in values[a] else math.nan
                    for s in seeds
                },
                "mean [95% CI]": final[a].fmt(),
            }
            for a in values
        ]
    )


def _decide(claims: list[Claim]) -> None:
    """Holm over the secondary claims (and over the primary ones when there are several), with
    Bonferroni-adjusted intervals of matching level; one primary claim keeps its 95% test."""
    for family in ([c for c in claims if c.primary], [c for c in claims if not c.primary]):
        tested = [c for c in family if math.isfinite(c.difference.p)]
        m = len(tested)
        if m == 1 and family[0].primary:
            tested[0].shown = tested[0].difference
            continue
        for c, p in zip(tested, stats.holm([c.difference.p for c in tested])):
            c.p_adj, c.alpha = p, stats.ALPHA / m
            c.shown = c.difference.at_level(1 - stats.ALPHA / m)
        for c in family:
            c.shown = c.shown or c.difference


def _fmt_p(p: float) -> str:
    return "—" if not math.isfinite(p) else f"{p:.2g}" if p >= 0.001 else "< 0.001"


def _clause(c: Claim, power: bool = True) -> str:
    """ "arm +d [lo, hi] (p_Holm 0.03, better, significant; MDE ±0.05)"."""
    p = f"p_Holm {_fmt_p(c.p_adj)}" if math.isfinite(c.p_adj) else f"p {_fmt_p(c.difference.p)}"
    comps = c.difference.components
    mde = (
        f"; MDE ±{comps.mde(alpha=c.alpha):.3g}"
        if power and comps is not None and comps.seeds >= 2
        else ""
    )
    return f"{c.arm} {c.shown.fmt(signed=True)} ({p}, {c.call()}{mde})"


def _design(e: stats.Estimate) -> str:
    return f"{e.seeds} seed{'s' * (e.seeds != 1)}" + (
        f" x {e.clips} prompts" if e.clips > 1 else ""
    )


def _primary_text(
    claims: list[Claim],
    means: dict,
    base: str,
    metric: str,
    statistic: str,
    level: float | None,
    arm: str | None,
    origin: str,
) -> str:
    """The verdict's first sentence: the primary endpoint alone, with its power."""
    prim = [c for c in claims if c.primary]
    what = f"{metric} {stat_label(statistic, level)}"
    head = f"Primary endpoint ({origin}): {what}"
    if not prim:
        missing = (
            f"arm {arm!r} has no paired results against {base}"
            if arm
            else "no run has this statistic (curve statistics need train.snapshots with 2 or more "
            "points)"
        )
        return f"{head}, against {base}: not tested, {missing}."
    base_mean = means.get((metric, statistic), {}).get(base, stats.NAN)
    if len(prim) == 1:
        c = prim[0]
        d = c.difference
        t = f"t{d.df:.0f}" if math.isfinite(d.df) else "t"
        arm_mean = means.get((metric, statistic), {}).get(c.arm, stats.NAN)
        return (
            f"{head}, {c.arm} against {base}: {d.fmt(signed=True)} ({int(stats.LEVEL * 100)}% "
            f"interval, {t}, p {_fmt_p(d.p)}; {_design(d)}): {c.call()}. {c.arm} {arm_mean.fmt()}, "
            f"{base} {base_mean.fmt()}. "
            f"Power: {stats.describe_power(d)}."
        )
    level_pct = f"{100 * (1 - prim[0].alpha):.3g}%"
    return (
        f"{head}, each of the {len(prim)} arms against {base} ({base_mean.fmt()}), "
        f"Holm-corrected over these "
        f"{len(prim)} tests (intervals Bonferroni-adjusted to {level_pct}): "
        + "; ".join(_clause(c, power=False) for c in prim)
        + ". Power: "
        + "; ".join(f"{c.arm}: {stats.describe_power(c.difference, c.alpha)}" for c in prim)
        + "."
    )


def _secondary_text(
    claims: list[Claim], means: dict[str, stats.Estimate], base: str, where: str
) -> str:
    """Who leads at `where` and each arm against the baseline (Holm-adjusted)."""
    c0 = claims[0]
    finite = {a: e for a, e in means.items() if math.isfinite(e.mean)}
    higher = not (c0.statistic == "steps_to") and c0.better_if_positive
    unit = "steps" if c0.statistic == "steps_to" else c0.metric
    lead = ""
    if finite:
        best = (max if higher else min)(finite, key=lambda a: finite[a].mean)
        lead = (
            f"{best} has the {'highest' if higher else 'lowest'} mean {unit}, {finite[best].fmt()} "
            f"({'higher' if higher else 'lower'} is better; {_design(finite[best])}). "
        )
    return (
        f"{where} (secondary): {lead}Against {base} "
        f"({finite[base].fmt() if base in finite else '—'}): "
        + "; ".join(_clause(c) for c in claims)
        + "."
    )


def _method_text(claims: list[Claim], notes: list[str]) -> str:
    """How many tests, which correction, which intervals."""
    prim = [c for c in claims if c.primary]
    sec = [c for c in claims if not c.primary and math.isfinite(c.difference.p)]
    methods = sorted({c.difference.method.split(";")[0] for c in claims if c.difference.method})
    adjusted = 100 * (1 - stats.ALPHA / max(len(sec), 1))
    correction = "uncorrected, alpha 0.05" if len(prim) == 1 else "Holm-corrected"
    text = (
        f"Tests: {len(prim)} primary ({correction}) "
        f"and {len(sec)} secondary, Holm-corrected over the {len(sec)} secondary tests shown "
        f"here (family-wise error <= 5%); secondary intervals are Bonferroni-adjusted "
        f"({adjusted:.3g}%) so they hold jointly, and MDE is the minimum detectable difference at "
        f"80% power and that alpha. Intervals: {', '.join(methods) or 'none'} (harness/stats.py: "
        f"per-(seed, prompt) values, two-way random effects with Satterthwaite df; one value per "
        f"run: seed-level t; clipped to the metric's range)."
    )
    return text + "".join(f" Note: {n}." for n in dict.fromkeys(notes))


def compare_within(
    df: pd.DataFrame,
    metric: str,
    baseline: str | None,
    key: str,
    partners: tuple[str, ...] = (),
    primary: Any = None,
    trend: Any = None,
) -> Comparison:
    """Each arm against the baseline separately for each value of axis `key` (e.g. clip length), and
    the change of each gap between the axis' first and last values (a difference of differences,
    the interaction test). The primary endpoint is that change on the primary statistic
    (`partners`: the axes zipped with `key`, left out of the arm names those sentences follow).
    With a second axis crossed with `key` (e.g. speed), each arm is paired with the baseline arm of
    its own speed, and the change of the gap is tested once per speed.
    `trend` (report.trend) adds the change of the slope against its axis, a secondary claim."""
    col = f"param.{key}"
    if col not in df:
        return headline_comparison(df, metric, baseline, primary)
    trained = _trained(df)
    level_of = {
        str(a): _norm(v) for a, v in zip(trained["arm"], trained[col]) if v is not None and v == v
    }
    params_of = {
        str(a): {c: _norm(v) for c, v in row.items() if c.startswith("param.") and v == v}
        for a, (_, row) in zip(trained["arm"], trained.iterrows())
    }
    levels = list(dict.fromkeys(level_of.values()))
    try:
        levels.sort()
    except TypeError:
        pass
    values = headline_values(df, metric)
    if not values:
        return Comparison([f"No finished run reports the headline metric {metric!r}."])
    p_metric, p_stat, p_level, p_arm, origin = _primary(primary, metric)
    wanted = [(metric, "final", None), (metric, "curve_mean", None)]
    if (p_metric, p_stat, p_level) not in wanted:
        wanted.insert(0, (p_metric, p_stat, p_level))
    claims, notes, means, whys, pairs = [], [], {}, [], {}
    for m, statistic, lvl in wanted:
        vals, note = statistic_values(df, m, statistic, lvl)
        notes += [note] if note else []
        arm_bounds, diff_bounds = _bounds(m, statistic, _max_step(vals))
        gaps: dict[str, dict[Any, tuple[str, str]]] = {}  # stripped arm -> {level: (arm, base)}
        for level in levels:
            here = [a for a in vals if level_of.get(a) == level]
            if not here:
                continue
            base, why = _baseline(here, baseline)
            whys += [why] if why else []
            if base is None:
                continue
            for a in here:
                means.setdefault((m, statistic, level), {})[a] = stats.crossed(
                    list(vals[a].values()), arm_bounds
                )
            pairs[level] = _pair_with_baselines(here, base, baseline, params_of)
            for a, b in pairs[level].items():
                name = _without(a, (key, *partners))
                d = stats.paired_difference(vals[a], vals[b], diff_bounds)
                claims.append(
                    Claim(
                        name,
                        statistic,
                        m,
                        d,
                        _better_if_positive(m, statistic),
                        lvl,
                        where=f"{key}={level}",
                    )
                )
                gaps.setdefault(name, {})[level] = (a, b)
        for name, by_level in gaps.items():
            ends = [lv for lv in levels if lv in by_level]
            if len(ends) < 2:
                continue
            (a1, b1), (a2, b2) = by_level[ends[0]], by_level[ends[-1]]
            d = stats.difference_of_differences(
                vals[a1], vals[b1], vals[a2], vals[b2], (2 * diff_bounds[0], 2 * diff_bounds[1])
            )
            is_primary = (m, statistic, lvl) == (p_metric, p_stat, p_level) and (
                p_arm is None or arm_matches(p_arm, name)
            )
            claims.append(
                Claim(
                    name,
                    statistic,
                    m,
                    d,
                    _better_if_positive(m, statistic),
                    lvl,
                    where=f"{key} {ends[0]} -> {ends[-1]}",
                    interaction=True,
                    primary=is_primary,
                )
            )
        if trend is not None:
            claim, why = _trend_claim(
                df, vals, level_of, levels, key, trend, (m, statistic, lvl), diff_bounds
            )
            claims += [claim] if claim else []
            whys += [why] if why else []
    _decide(claims)
    prim = [c for c in claims if c.primary]
    head = (
        f"Primary endpoint ({origin}): the change of the gap against the baseline along {key}, "
        f"{p_metric} {stat_label(p_stat, p_level)}"
    )
    if not prim:
        verdicts = [f"{head}: not tested (fewer than two values of {key} with paired results)."]
    elif len(prim) == 1:
        d = prim[0].difference
        verdicts = [
            f"{head}, {prim[0].arm} from {prim[0].where.split(' ', 1)[1]}: {d.fmt(signed=True)} "
            f"({int(stats.LEVEL * 100)}% interval of the difference of differences, t{d.df:.0f}, p "
            f"{_fmt_p(d.p)}; {_design(d)}): {prim[0].call()}. Power: {stats.describe_power(d)}."
        ]
    else:
        verdicts = [
            f"{head}, Holm-corrected over {len(prim)} arms: "
            + "; ".join(_clause(c) for c in prim)
            + "."
        ]
    verdicts += list(dict.fromkeys(whys))
    for m, statistic, lvl in wanted:
        for level in levels:
            for b in dict.fromkeys(pairs.get(level, {}).values()):  # each baseline arm, in order
                arms = [a for a, base_of in pairs[level].items() if base_of == b]
                names = {_without(a, (key, *partners)) for a in arms}
                mine = [
                    c
                    for c in claims
                    if (c.metric, c.statistic, c.level) == (m, statistic, lvl)
                    and c.where == f"{key}={level}"
                    and c.arm in names
                    and not c.primary
                ]
                if mine:
                    here = means[(m, statistic, level)]
                    verdicts.append(
                        f"{key}={level}. "
                        + _secondary_text(
                            mine,
                            {a: here[a] for a in (b, *arms) if a in here},
                            b,
                            stat_label(statistic, lvl).capitalize(),
                        )
                    )
        inter = [
            c
            for c in claims
            if (c.metric, c.statistic, c.level) == (m, statistic, lvl)
            and c.interaction
            and not c.primary
        ]
        if inter:
            verdicts.append(
                f"Change of the gap along {key}, {m} {stat_label(statistic, lvl)} (secondary): "
                + "; ".join(
                    f"{c.arm} {c.where.split(' ', 1)[1]}: {c.shown.fmt(signed=True)} "
                    f"(p_Holm {_fmt_p(c.p_adj)}, {c.call()})"
                    for c in inter
                )
                + "."
            )
    verdicts.append(_method_text(claims, notes))
    final = {
        a: e
        for (m, s, _), by_arm in means.items()
        if (m, s) == (metric, "final")
        for a, e in by_arm.items()
    }
    return Comparison(verdicts, _per_seed(values, metric, final), final, {}, claims)


def _pair_with_baselines(
    arms: list[str], first: str, baseline: str | None, params_of: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """{arm: the baseline arm it is paired with} at one level of the within-axis. Where several
    arms match report.baseline (a grid crossed with a second axis, e.g. speed), each arm is paired
    with the baseline arm sharing most of its axis values (the same speed), so a gap never mixes
    two settings of the other axis; otherwise every arm is paired with `first`."""
    bases = [a for a in arms if baseline and arm_matches(baseline, a)] or [first]

    def shared(a: str, b: str) -> int:
        pa, pb = params_of.get(a, {}), params_of.get(b, {})
        return sum(pa[k] == pb.get(k) for k in pa)

    return {
        a: max(bases, key=lambda b: (shared(a, b), -bases.index(b))) for a in arms if a not in bases
    }


def _trend_claim(
    df: pd.DataFrame,
    vals: Values,
    level_of: dict[str, Any],
    levels: list[Any],
    key: str,
    trend: Any,
    what: tuple[str, str, float | None],
    diff_bounds: tuple[float, float],
) -> tuple[Claim | None, str]:
    """The change of the slope of `what` against `trend.axis` from the first to the last value of
    `key` (slope weights at the last level minus those at the first), or None and why not."""
    m, statistic, lvl = what
    col = f"param.{trend.axis}"
    trained = _trained(df)
    if col not in trained:
        return None, f"report.trend.axis {trend.axis!r} is no axis of the runs: no trend test."
    x_of = {str(a): v for a, v in zip(trained["arm"], trained[col])}
    # `arms` names arms by label or by their axis values (a named arm's label hides them)
    params = [c for c in trained.columns if c.startswith("param.")]
    axes_of = {
        str(r["arm"]): "".join(f", {c[len('param.') :]}={_fmt_value(r[c])}" for c in params)
        for _, r in trained.iterrows()
    }
    ends = [lv for lv in (levels[0], levels[-1]) if lv is not None] if len(levels) >= 2 else []
    cells: list[dict[int, np.ndarray]] = []
    weights: list[float] = []
    xs: list[list[float]] = []
    for sign, level in zip((-1.0, 1.0), ends):
        here = {
            float(x_of[a]): a
            for a in vals
            if level_of.get(a) == level
            and isinstance(x_of.get(a), (int, float))
            and (trend.arms is None or arm_matches(trend.arms, a + axes_of.get(a, "")))
        }
        x = sorted(here)
        if len(x) < 2 or (trend.log and x[0] <= 0):
            return None, (
                f"report.trend: fewer than 2 arms with a{' positive' * trend.log} "
                f"{trend.axis} at {key}={level}: no trend test."
            )
        xs.append(x)
        w = stats.slope_weights([math.log(v) if trend.log else v for v in x])
        cells += [vals[here[v]] for v in x]
        weights += [sign * v for v in w]
    if len(xs) < 2:
        return None, f"report.trend: fewer than two values of {key} with results: no trend test."
    # weights summing to 0 keep sum w x within sum |w| times the metric's span
    total = sum(abs(w) for w in weights)
    d = stats.contrast(cells, weights, (total * diff_bounds[0], total * diff_bounds[1]))
    return Claim(
        trend_arm(trend),
        statistic,
        m,
        d,
        _better_if_positive(m, statistic),
        lvl,
        where=f"{key} {ends[0]} -> {ends[-1]}",
        interaction=True,
        slope=True,
    ), ""


def trend_arm(trend: Any) -> str:
    """The arm the trend's test names (report.trend): "slope in log train.shift"."""
    return f"slope in {'log ' * trend.log}{trend.axis}"


def _fmt_value(v: Any) -> str:
    """An axis value as arm labels print it (numbers as %g: 1.0 prints 1)."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def _norm(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _without(arm: str, keys: tuple[str, ...]) -> str:
    """An arm label without the `key=value` parts of `keys` ("path.kind=metric, frames=8" ->
    "path.kind=metric")."""
    return ", ".join(p for p in arm.split(", ") if p.split("=")[0] not in keys) or arm


def power_table(claims: list[Claim]) -> pd.DataFrame:
    """One row per claim: the difference, its interval as printed, p, the minimum detectable
    difference at 80% power and the claim's alpha, and the seeds that detect the observed one."""
    rows = []
    for c in claims:
        comps = c.difference.components
        ok = comps is not None and comps.seeds >= 2
        need = comps.seeds_for(c.difference.mean, alpha=c.alpha) if ok else None
        rows.append(
            {
                "claim": ("primary: " if c.primary else "") + c.label(),
                "difference": (c.shown or c.difference).fmt(signed=True),
                "p (Holm)": _fmt_p(c.p),
                "alpha": f"{c.alpha:.3g}",
                "MDE (80% power)": f"±{comps.mde(alpha=c.alpha):.3g}" if ok else "—",
                "seeds for 80% power": (str(need) if need is not None else f"> {stats.MAX_SEEDS}")
                if ok
                else "—",
                "interval": c.difference.method,
            }
        )
    return pd.DataFrame(rows)


def agreement(
    original: Comparison, replicate: Comparison, pooled: Comparison, seeds: str
) -> tuple[str, pd.DataFrame]:
    """Per claim of the original: the replicate's estimate, same sign, overlapping intervals, and
    the pooled estimate (both seed sets, Holm-corrected again); one sentence and the table."""
    rep = {c.key: c for c in replicate.claims}
    pool = {c.key: c for c in pooled.claims}
    rows, agree, both = [], 0, 0
    for c in original.claims:
        r, p = rep.get(c.key), pool.get(c.key)
        if r is None:
            continue
        a, b = c.shown or c.difference, r.shown or r.difference
        sign = "zero" if a.mean * b.mean == 0 else "yes" if (a.mean > 0) == (b.mean > 0) else "no"
        overlap = a.low <= b.high and b.low <= a.high
        # the sign of a non-significant difference is noise: both then say "no difference"
        agrees = overlap and (sign != "no" or not c.significant)
        both += 1
        agree += agrees
        rows.append(
            {
                "claim": ("primary: " if c.primary else "") + c.label(),
                "original": a.fmt(signed=True),
                "replicate": b.fmt(signed=True),
                "same sign": sign,
                "intervals overlap": "yes" if overlap else "no",
                "agrees": "yes" if agrees else "no",
                "pooled": (p.shown or p.difference).fmt(signed=True) if p else "—",
                "pooled call": p.call() if p else "—",
            }
        )
    prim = next((row for row in rows if row["claim"].startswith("primary: ")), None)
    text = (
        f"Replicate on fresh seeds {seeds}: {agree} of {both} claims agree (overlapping "
        f"intervals, and the same sign, or one estimate 0, where the original is significant)."
    )
    if prim:
        text += (
            f" Primary: original {prim['original']}, replicate {prim['replicate']}, pooled "
            f"{prim['pooled']} ({prim['pooled call']})."
        )
    return text, pd.DataFrame(rows)


def denoise_table(df: pd.DataFrame) -> pd.DataFrame:
    """arm x noise level: held-out cross-entropy, mean over seeds (lower: that level is easier)."""
    done = _trained(df)
    cols = sorted(
        (c for c in done.columns if c.startswith(f"metric.{DENOISE}")),
        key=lambda c: float(c.rpartition("=")[2]),
    )
    if not cols:
        return pd.DataFrame()
    out = done.groupby("arm", sort=False)[cols].mean()
    out.columns = [f"t={c.rpartition('=')[2]}" for c in cols]
    return out.reset_index()
