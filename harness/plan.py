"""`python -m harness plan SPEC --effect 0.05`: how many seeds (and prompts) a comparison needs,
from the variance components of an existing pilot run of the spec.

Each test of the spec's verdict (harness.comparison: the primary endpoint and the secondary
comparisons) has the variance components of its paired differences (seed, prompt, residual;
harness.stats.Components). For an effect, the table gives the seeds at which that test detects it
with 80% power at its alpha (0.05 for a single primary test, the Bonferroni alpha of a family for
the others: conservative for Holm), at the pilot's prompt count and at `--prompts`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness import stats
from harness.spec import Spec


def plan_table(
    spec: Spec, runs_root: Path, profile: str, effect: float, prompts: int | None = None
) -> tuple[pd.DataFrame, str]:
    """One row per test of the verdict: the pilot's design and MDE, and the seeds `effect` needs."""
    from harness.regression_gate import require_runs
    from harness.report import verdict, with_derived
    from harness.store import load_results

    df = load_results(runs_root, spec.name, profile)
    require_runs(df, spec, runs_root, profile)
    comparison = verdict(spec, with_derived(df)[0])
    if comparison is None:
        raise ValueError(
            f"{spec.source}: report.headline: expected a metric to plan for (the verdict's), "
            f"got none"
        )
    rows = []
    for c in comparison.claims:
        comps = c.difference.components
        if comps is None or comps.seeds < 2:
            continue
        row = {
            "test": ("primary: " if c.primary else "") + c.label(),
            "alpha": f"{c.alpha:.3g}",
            "pilot": f"{comps.seeds} seeds x {comps.prompts} prompts"
            if comps.prompts > 1
            else f"{comps.seeds} seeds (one value per run)",
            "sd seed / prompt / residual": " / ".join(
                f"{math.sqrt(v):.3g}" for v in (comps.seed, comps.prompt, comps.residual)
            ),
            "MDE now": f"±{comps.mde(alpha=c.alpha):.3g}",
            f"seeds for {effect:g}": _need(comps.seeds_for(effect, alpha=c.alpha)),
        }
        if prompts and comps.prompts > 1:
            row[f"seeds for {effect:g} at {prompts} prompts"] = _need(
                comps.seeds_for(effect, prompts, c.alpha)
            )
        rows.append(row)
    if not rows:
        raise ValueError(
            f"{spec.source}: expected a pilot with at least 2 finished seeds per arm under "
            f"{runs_root} (profile {profile}) to measure seed variance, got none"
        )
    note = (
        f"Seeds at which each test detects a true difference of {effect:g} with "
        f"{int(stats.POWER * 100)}% power (two-sided t test at its alpha; variance components of "
        f"the pilot's "
        f"paired differences, {profile} profile under {runs_root})."
    )
    return pd.DataFrame(rows), note


def _need(n: int | None) -> str:
    return str(n) if n is not None else f"> {stats.MAX_SEEDS}"
