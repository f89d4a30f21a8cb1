"""The performance targets the project holds itself to, checked against a perf run's figures.

A target names flattened figure keys of one suite with a glob (`step_*.efficiency_bare_over_train`
matches every preset measured); each matching figure is one row: met, missed, or "not measured"
when no figure matches (a suite not run, or a CUDA-only figure on a CPU run).
"""

from __future__ import annotations

import fnmatch
import operator
from dataclasses import dataclass
from typing import Any

_OPS = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    suite: str
    key: str  # glob over the suite's flattened figure keys
    op: str  # "<=" or ">="
    bound: float
    label: str

    def rows(self, figures: dict[str, Any] | None) -> list[tuple[str, str, str]]:
        """(figure key, measured, verdict) for each matching figure of this suite."""
        flat = dict(flatten(figures or {}))
        found = [
            (k, v)
            for k, v in flat.items()
            if fnmatch.fnmatchcase(k, self.key) and isinstance(v, (int, float))
        ]
        if not found:
            return [(self.key, "-", "not measured")]
        return [
            (k, f"{v:.4g}", "met" if _OPS[self.op](v, self.bound) else "missed") for k, v in found
        ]


TARGETS: list[Target] = [
    Target(
        "paths",
        "tokens_*.*.time_ratio",
        "<=",
        1.0,
        "metric path time no worse than the naive reference",
    ),
    Target(
        "paths",
        "*_33280.sample.memory_ratio",
        ">=",
        10.0,
        "metric path sampling memory >= 10x below naive at 33,280 tokens",
    ),
    Target(
        "sampler",
        "sampler_0.6B_k64000.overhead_ratio",
        "<=",
        0.10,
        "sampler overhead <= 10% of the forward (0.6B)",
    ),
    Target(
        "train",
        "step_*.efficiency_bare_over_train",
        ">=",
        0.90,
        "training step >= 90% of the bare forward + backward",
    ),
    Target("train", "step_0.6B.mfu", ">=", 0.40, "MFU >= 40% at 0.6B bf16 (H100/H200-class GPU)"),
    Target(
        "train_compile",
        "step_0.6B_compile.mfu",
        ">=",
        0.40,
        "MFU >= 40% at 0.6B bf16, blocks compiled",
    ),
    Target(
        "train",
        "head_*.memory_ratio",
        ">=",
        2.0,
        "chunked head loss peak memory >= 2x below the plain head",
    ),
    Target("train", "head_*.speedup", ">=", 1.0, "chunked head loss no slower than the plain head"),
    Target("harness", "grid_1000.seconds", "<=", 2.0, "1,000-run grid expanded and validated"),
    Target(
        "harness", "noop_rerun.rerun_with_report_s", "<=", 5.0, "no-op rerun of a completed spec"
    ),
    Target(
        "seeds",
        "workers_*.best_lever.speedup_vs_eager",
        ">=",
        2.5,
        "seeds per CPU minute >= 2.5x today's (the best lever that keeps each seed's result)",
    ),
    Target(
        "data",
        "rss.shards_growth_ratio",
        "<=",
        1.05,
        "streaming training peak RSS flat (<= 5%) as the data grows 10x",
    ),
    Target(
        "cpu_isa",
        "ratio_pinned_over_native",
        "<=",
        1.10,
        "CPU kernel pins (harness/cpu.py) cost <= 10% of train step time",
    ),
]


def flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """[(dotted key, value)] of a nested dict's leaves."""
    out: list[tuple[str, object]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        out += flatten(v, key + ".") if isinstance(v, dict) else [(key, v)]
    return out


def verdicts(
    results: dict, targets: list[Target] = TARGETS
) -> list[tuple[str, str, str, str, str]]:
    """(suite, target, figure key, measured, verdict) rows for the suites this run measured."""
    out = []
    for t in targets:
        if t.suite in results.get("suites", {}):
            out += [
                (t.suite, f"{t.label} ({t.op} {t.bound:g})", *row)
                for row in t.rows(results["suites"][t.suite])
            ]
    return out


def table(results: dict) -> str:
    """The compact target table printed at the end of a perf run (markdown)."""
    rows = verdicts(results)
    if not rows:
        return "no targets for the suites run\n"
    lines = ["| suite | target | figure | measured | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines) + "\n"
