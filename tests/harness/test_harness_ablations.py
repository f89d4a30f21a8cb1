"""The shipped ablations that answer one paper claim each (timestep_shift, path_search,
model_scale): each spec's smoke profile validates, runs and renders the report that its default
profile will, through the CLI, with the verdict its claim needs (the interaction and slope
contrasts, the enqueued points against the best trial, the scaling table)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# spec -> what its smoke report must hold (each a piece of the verdict its default report gives)
EXPECTED = {
    "timestep_shift": [
        "Primary endpoint (declared in report.primary): the change of the gap against the baseline "
        "along benchmark.world.frames, alignment_shape at the end of training, shift 3 from 1 -> 4",
        "slope in log train.shift 1 -> 4",
        "(change of the slope)",
        "plots/metric_vs_param.png",
    ],
    "path_search": [
        "## Verdict (search, alignment)",
        "Calibrated point, trial 1 (c ",
        "it minus the ",
        "of 3 finished",
        "winner's curse",
        "| trial | state | value | se |",
        "plots/optimization_history.png",
        "plots/contour.png",
    ],
    "model_scale": [
        "Scaling (slope of each metric against log10 non-embedding parameters",
        "| semantics | alignment_shape |",
        "| quality | clean_fraction |",
        "plots/scaling.png",
        "small 788k against tiny 74k",
    ],
}


# spec -> (arm, metric) tests its smoke verdict.json must hold beyond the headline's (what
# `python -m harness findings` decides the search and scaling claims from)
EXPECTED_TESTS = {
    "timestep_shift": [("slope in log train.shift", "alignment_shape")],
    "path_search": [
        ("calibrated point", "alignment"),
        ("enqueued point (path.alpha=0.9; path.c=3)", "alignment"),
    ],
    "model_scale": [
        ("slope per decade of parameters", "alignment"),
        ("slope per decade of parameters", "share of headroom per decade"),
    ],
}


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_smoke_profile_validates_runs_and_reports_the_claims_verdict(
    name: str, tmp_path: Path
) -> None:
    spec = f"ablations/{name}.yaml"
    ok = harness("validate", spec, "--profile", "smoke")
    assert ok.returncode == 0, ok.stderr[-2000:]
    res = harness(
        "run",
        spec,
        "--profile",
        "smoke",
        "--runs-root",
        str(tmp_path / "runs"),
        "--reports-dir",
        str(tmp_path / "reports"),
        "--no-progress",
    )
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    report = (tmp_path / "reports" / name / "smoke" / "report.md").read_text()
    missing = [text for text in EXPECTED[name] if text not in report]
    assert not missing, missing
    verdict = json.loads((tmp_path / "reports" / name / "smoke" / "verdict.json").read_text())
    tests = {(t["arm"], t["metric"]) for t in verdict["tests"]}
    assert set(EXPECTED_TESTS[name]) <= tests, tests


def test_a_profile_replaces_the_zip_model_scale_smoke_keeps_its_compute_ratio() -> None:
    """model_scale's smoke profile replaces the zip (the default's 4,000 / 1,000 / 400 steps would
    take minutes), keeping the sizes and their 100:25:10 step ratio."""
    from harness.expand import apply_profile, expand
    from harness.specfile import load_spec

    spec = load_spec(REPO / "ablations" / "model_scale.yaml")
    smoke = {r.arm: r.config.train.steps for r in expand(spec, "smoke") if r.reference is None}
    default = {r.arm: r.config.train.steps for r in expand(spec, "default") if r.reference is None}
    assert smoke == {"tiny 74k": 40, "small 2-layer 296k": 10, "small 788k": 4}
    assert default == {"tiny 74k": 4000, "small 2-layer 296k": 1000, "small 788k": 400}
    assert apply_profile(spec, "smoke")[0].seeds == [0]
