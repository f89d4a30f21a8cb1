"""harness.check: passes on equal results, fails on a degraded metric / missing arm, baseline roundtrip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_harness_report import A1, A3, RUNS, SPEC, write_runs  # the results-contract fixture (same tests dir)

from harness.check import check, direction_of
from harness.specfile import parse_spec


@pytest.fixture
def setup(tmp_path: Path) -> tuple:
    runs = tmp_path / "runs"
    write_runs(runs)
    baseline = tmp_path / "baselines" / "timestep_shift.json"
    spec = parse_spec(SPEC)
    assert check(spec, runs, "smoke", baseline, 0.05, update_baseline=True) == 0
    return spec, runs, baseline


def test_update_baseline_roundtrip_and_equal_results_pass(setup: tuple, capsys: pytest.CaptureFixture) -> None:
    spec, runs, baseline = setup
    data = json.loads(baseline.read_text())
    assert data["metrics"]["alignment"]["direction"] == "higher"
    assert data["metrics"]["train_loss"]["direction"] == "lower"
    assert data["metrics"]["alignment"]["arms"][A1] == pytest.approx(0.6, abs=1e-12)
    assert set(data["metrics"]["alignment"]["arms"]) == set(RUNS)
    assert check(spec, runs, "smoke", baseline) == 0
    assert "OK" in capsys.readouterr().out
    assert not list(baseline.parent.glob(".*.tmp"))  # atomic write left no temp file


def _degrade(runs: Path, arm: str, alignment: float) -> None:
    """Rewrite seed 0 of `arm` with a new alignment value."""
    table = {k: list(v) for k, v in RUNS.items()}
    state, _, loss = table[arm][0]
    table[arm][0] = (state, alignment, loss)
    write_runs(runs, table)


def test_degraded_metric_fails_with_a_table(setup: tuple, capsys: pytest.CaptureFixture) -> None:
    spec, runs, baseline = setup
    _degrade(runs, A1, 0.2)  # arm mean 0.6 -> 0.5: drop 0.1 > 0.05 * max(0.6, 1)
    assert check(spec, runs, "smoke", baseline) == 1
    out = capsys.readouterr().out
    assert "regressed" in out and A1 in out and "alignment" in out
    # a looser tolerance on the command line lets the same drop pass
    assert check(spec, runs, "smoke", baseline, tolerance=0.2) == 0


def test_improvement_and_small_noise_pass(setup: tuple) -> None:
    spec, runs, baseline = setup
    _degrade(runs, A1, 0.9)  # higher is better: an improvement never fails
    assert check(spec, runs, "smoke", baseline) == 0
    _degrade(runs, A1, 0.47)  # mean -0.01, within 0.05
    assert check(spec, runs, "smoke", baseline) == 0


def test_missing_arm_and_failed_arm_are_failures(setup: tuple, capsys: pytest.CaptureFixture) -> None:
    spec, runs, baseline = setup
    table = {k: v for k, v in RUNS.items() if k != "ref:random"}
    table[A3] = [("failed", math.nan, math.nan)] * 3
    write_runs(runs, table)
    assert check(spec, runs, "smoke", baseline) == 1
    out = capsys.readouterr().out
    assert "missing arm" in out and "ref:random" in out and "no finished run" in out


def test_bad_baseline_is_a_clear_error(setup: tuple, tmp_path: Path) -> None:
    spec, runs, _ = setup
    with pytest.raises(ValueError, match="--baseline: expected an existing baseline JSON"):
        check(spec, runs, "smoke", tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"metrics": {"alignment": {"direction": "up", "arms": {}}}}))
    with pytest.raises(ValueError, match="metrics.alignment: expected"):
        check(spec, runs, "smoke", bad)


def test_direction_from_scorer_declarations() -> None:
    assert direction_of("fid") == "lower" and direction_of("long.long_drift") == "lower"
    assert direction_of("alignment") == "higher" and direction_of("i2v.first_frame_fidelity") == "higher"
    assert direction_of("train_loss") == "lower"
    with pytest.raises(ValueError, match="'long.drift'"):  # no scorer declares it: no guessing from the name
        direction_of("long.drift")
