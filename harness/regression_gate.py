"""`python -m harness check SPEC --baseline FILE`: regression gate on the latest results.

Baseline JSON: {"spec", "profile", "code", "metrics": {name: {"direction": "higher"|"lower",
"tolerance": float, "arms": {arm: value}}}}. A metric regresses on an arm when it is worse
than the baseline by more than tolerance * max(|baseline|, 1) (relative for large metrics
such as FID, absolute for metrics in [0, 1]). An arm or metric of the baseline that the
results lack, or an arm whose runs all failed, is a failure too. Values are per-arm means
over finished runs.

Tolerances from seed variance: `--update-baseline` on runs with two or more seeds per trained arm
gives each metric tolerance = Z * s * sqrt(1 + 1/n), s the within-arm seed standard deviation
pooled over the trained arms and n the seeds per arm: the spread of one fresh seed's value around
an n-seed mean, Z = 3 of them (a drift of that much is a regression, not seed luck). The gate
then runs fewer seeds than the baseline (path_shape's `ci` profile: one) and the baseline says
how its tolerances were derived (`derivation`). Without several seeds the tolerance is
--tolerance, else the one the existing baseline file holds, else DEFAULT_TOLERANCE.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from harness import tables
from harness.plugins import metric_info
from harness.spec import Spec
from harness.specfile import load_spec
from harness.store import load_results
from ursa.io import atomic_write_json

DEFAULT_TOLERANCE = 0.05
Z = 3.0  # seed standard deviations a single-seed value may drift from the baseline's mean
MIN_TOLERANCE = 0.01  # for metrics no seed moves (a constant metric still gets a little room)


def direction_of(metric: str) -> str:
    """ "higher" or "lower": which way is better, as the scorer that reports `metric` declares it."""
    info = metric_info(metric)
    if info is None:
        raise ValueError(
            f"metric {metric!r}: expected a metric some registered scorer declares (its direction "
            f"decides what a regression is), got an undeclared one"
        )
    return "higher" if info.higher_is_better else "lower"


def arm_means(df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{metric: {arm: mean over finished runs}} (NaN when an arm has no finished run with the metric)."""
    summary = tables.summarise(df)
    if summary.empty:
        return {}
    return {
        m: dict(zip(summary["arm"].astype(str), summary[f"{m}.mean"].astype(float)))
        for m in tables.metric_columns(df)
    }


def require_runs(df: pd.DataFrame, spec: Spec, runs_root: str | Path, profile: str) -> None:
    """ValueError (exit 2) when spec+profile has no runs under runs_root: nothing to report or check."""
    if df.empty:
        stored = (Path(runs_root) / spec.name).glob("*/*/result.json")
        others = sorted({p.parent.parent.name for p in stored} - {profile})
        where = f"; runs exist for profile {', '.join(others)} (pass --profile)" if others else ""
        raise ValueError(
            f"{spec.source}: no runs of {spec.name!r} (profile {profile}) under runs "
            f"root {runs_root}{where}; expected the runs of `python -m harness run "
            f"{spec.source} --profile {profile} --runs-root {runs_root}`"
        )


def seed_tolerances(df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{metric: {"tolerance", "seed_sd", "seeds"}} from the seed spread of the trained arms'
    finished runs (module docstring); {} unless every trained arm has at least two seeds."""
    done = df[(df["state"] == "done") & df["reference"].isna()]  # references have no seed spread
    counts = done.groupby("arm")["seed"].nunique()
    if done.empty or counts.min() < 2:
        return {}
    n = int(counts.min())
    out = {}
    for column in tables.metric_columns(done):
        values = done[["arm", f"metric.{column}"]].dropna()
        groups = [
            g.to_numpy(float) for _, g in values.groupby("arm")[f"metric.{column}"] if len(g) >= 2
        ]
        dof = sum(len(g) - 1 for g in groups)
        if not dof:
            continue
        sd = math.sqrt(sum(float(((g - g.mean()) ** 2).sum()) for g in groups) / dof)
        tol = max(MIN_TOLERANCE, Z * sd * math.sqrt(1 + 1 / n))
        out[column] = {"tolerance": tol, "seed_sd": sd, "seeds": n}
    return out


def make_baseline(
    spec: Spec,
    profile: str,
    df: pd.DataFrame,
    tolerance: float | None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The baseline of these results; tolerances from --tolerance, else from the seed spread,
    else kept from `previous` (the baseline file being replaced), else DEFAULT_TOLERANCE."""
    from harness.identity import code_version

    means, spread = arm_means(df), seed_tolerances(df)
    kept = (previous or {}).get("metrics", {})

    def tolerance_of(metric: str) -> float:
        if tolerance is not None:
            return tolerance
        if metric in spread:
            return round(spread[metric]["tolerance"], 4)
        return float(kept.get(metric, {}).get("tolerance", DEFAULT_TOLERANCE))

    out: dict[str, Any] = {"spec": spec.name, "profile": profile, "code": code_version()}
    if spread and tolerance is None:
        n = next(iter(spread.values()))["seeds"]
        out["derivation"] = (
            f"values: per-arm means over {n} seeds; tolerance per metric: {Z:g} x "
            f"the pooled within-arm seed SD x sqrt(1 + 1/{n}), at least "
            f"{MIN_TOLERANCE} (harness/regression_gate.py)"
        )
    elif tolerance is None and previous and previous.get("derivation"):
        out["derivation"] = (
            f"tolerances kept from the baseline this one replaced ({previous['derivation']})"
        )
    out["metrics"] = {
        m: {
            "direction": direction_of(m),
            "tolerance": tolerance_of(m),
            **({"seed_sd": round(spread[m]["seed_sd"], 4)} if m in spread else {}),
            "arms": {a: v for a, v in per_arm.items() if math.isfinite(v)},
        }
        for m, per_arm in sorted(means.items())
    }
    return out


def read_baseline(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(
            f"--baseline: expected an existing baseline JSON file, got missing {str(path)!r} "
            "(create one with --update-baseline)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--baseline {path}: expected JSON, got a parse error: {exc}") from None
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise ValueError(
            f"--baseline {path}: expected an object with a 'metrics' mapping, got {type(data).__name__}"
        )
    for name, entry in metrics.items():
        if not (
            isinstance(entry, dict)
            and entry.get("direction") in ("higher", "lower")
            and isinstance(entry.get("arms"), dict)
        ):
            raise ValueError(
                f"--baseline {path}: metrics.{name}: expected {{'direction': 'higher'|'lower', "
                f"'tolerance': float, 'arms': {{arm: value}}}}, got {entry!r}"
            )
    return data


def against_baseline(
    baseline: dict[str, Any], means: dict[str, dict[str, float]], tolerance: float | None
) -> pd.DataFrame:
    """One row per (metric, arm) of the baseline: baseline, current, delta, allowed, status."""
    rows = []
    for metric, entry in sorted(baseline["metrics"].items()):
        tol = (
            tolerance if tolerance is not None else float(entry.get("tolerance", DEFAULT_TOLERANCE))
        )
        sign = 1.0 if entry["direction"] == "higher" else -1.0
        for arm, base in sorted(entry["arms"].items()):
            current = means.get(metric, {}).get(arm, math.nan)
            allowed = tol * max(abs(base), 1.0)
            if metric not in means:
                status = "missing metric"
            elif arm not in means[metric]:
                status = "missing arm"
            elif not math.isfinite(current):
                status = "no finished run"
            else:
                status = "regressed" if sign * (current - base) < -allowed else "ok"
            rows.append(
                {
                    "metric": metric,
                    "arm": arm,
                    "direction": entry["direction"],
                    "baseline": base,
                    "current": current,
                    "delta": current - base,
                    "allowed": allowed,
                    "status": status,
                }
            )
    return pd.DataFrame(
        rows,
        columns=["metric", "arm", "direction", "baseline", "current", "delta", "allowed", "status"],
    )


def check(
    spec: Spec | str | Path,
    runs_root: str | Path,
    profile: str,
    baseline_path: str | Path,
    tolerance: float | None = None,
    update_baseline: bool = False,
) -> int:
    """0 when every baseline (metric, arm) is within tolerance, else 1 (the failures are printed).

    With `update_baseline`, write the current per-arm means as the new baseline (atomically) and return 0.
    """
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    if tolerance is not None and not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise ValueError(f"--tolerance: expected a number >= 0, got {tolerance!r}")
    df = load_results(runs_root, spec.name, profile)
    require_runs(df, spec, runs_root, profile)
    baseline_path = Path(baseline_path)
    if update_baseline:
        if df.empty or not (df["state"] == "done").any():
            raise ValueError(
                f"--update-baseline: expected finished runs of {spec.name}/{profile} under "
                f"{runs_root}, got none"
            )
        previous = read_baseline(baseline_path) if baseline_path.exists() else None
        atomic_write_json(baseline_path, make_baseline(spec, profile, df, tolerance, previous))
        print(f"baseline written: {baseline_path}")
        return 0
    baseline = read_baseline(baseline_path)
    made_for = (baseline.get("spec"), baseline.get("profile"))
    if made_for != (spec.name, profile) and all(made_for):
        raise ValueError(
            f"--baseline {baseline_path}: expected a baseline of {spec.name}/{profile}, got one made "
            f"for {made_for[0]}/{made_for[1]} (pass that spec and --profile, or make one with "
            f"--update-baseline)"
        )
    table = against_baseline(baseline, arm_means(df), tolerance)
    bad = table[table["status"] != "ok"]
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4g}".format
    ):
        if bad.empty:
            print(
                f"check {spec.name}/{profile}: OK ({len(table)} metric x arm values within tolerance "
                f"of {baseline_path})"
            )
            return 0
        print(
            f"check {spec.name}/{profile}: {len(bad)} of {len(table)} metric x arm values FAILED "
            f"against {baseline_path}:"
        )
        print(bad.to_string(index=False))
    return 1
