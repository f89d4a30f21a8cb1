"""harness.regression_gate: passes on equal results, fails on a degraded metric / missing arm, baseline
roundtrip, tolerances from seed spread; the CI gate on real runs fails on a learning regression."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_harness_report import (
    A1,
    A3,
    RUNS,
    SPEC,
    write_runs,
)  # the results-contract fixture (same tests dir)

from harness.regression_gate import check, direction_of
from harness.specfile import load_spec, parse_spec


@pytest.fixture
def setup(tmp_path: Path) -> tuple:
    runs = tmp_path / "runs"
    write_runs(runs)
    baseline = tmp_path / "baselines" / "timestep_shift.json"
    spec = parse_spec(SPEC)
    assert check(spec, runs, "smoke", baseline, 0.05, update_baseline=True) == 0
    return spec, runs, baseline


def test_update_baseline_roundtrip_and_equal_results_pass(
    setup: tuple, capsys: pytest.CaptureFixture
) -> None:
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


def test_missing_arm_and_failed_arm_are_failures(
    setup: tuple, capsys: pytest.CaptureFixture
) -> None:
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


def test_tolerances_from_seed_spread(tmp_path: Path) -> None:
    """Without --tolerance, a baseline of several seeds per arm gets 3 x pooled seed SD x
    sqrt(1 + 1/n) (A1: 0.5, 0.6, 0.7; A3: 0.8, 0.9 -> pooled variance 0.025 / 3, n = 2 seeds in
    every arm), and a later baseline of one seed keeps those tolerances, not the default."""
    runs = tmp_path / "runs"
    write_runs(runs)
    baseline = tmp_path / "b.json"
    spec = parse_spec(SPEC)
    assert check(spec, runs, "smoke", baseline, update_baseline=True) == 0
    data = json.loads(baseline.read_text())
    expected = 3 * math.sqrt(0.025 / 3) * math.sqrt(1 + 1 / 2)
    assert data["metrics"]["alignment"]["tolerance"] == pytest.approx(expected, abs=1e-4)
    assert data["metrics"]["train_loss"]["tolerance"] == pytest.approx(expected, abs=1e-4)
    assert "3 x the pooled within-arm seed SD" in data["derivation"]
    write_runs(runs, {A1: RUNS[A1][:1], A3: RUNS[A3][:1]})
    assert check(spec, runs, "smoke", baseline, update_baseline=True) == 0
    again = json.loads(baseline.read_text())
    assert again["metrics"]["alignment"]["tolerance"] == pytest.approx(expected, abs=1e-4)
    assert again["derivation"].startswith("tolerances kept from the baseline this one replaced")


def test_direction_from_scorer_declarations() -> None:
    assert direction_of("fid") == "lower" and direction_of("long.long_drift") == "lower"
    assert (
        direction_of("alignment") == "higher"
        and direction_of("i2v.first_frame_fidelity") == "higher"
    )
    assert direction_of("train_loss") == "lower"
    with pytest.raises(
        ValueError, match="'long.drift'"
    ):  # no scorer declares it: no guessing from the name
        direction_of("long.drift")


# ------------------------------------------------------------------------- the gate on real runs

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = ROOT / "ablations" / "path_shape.yaml"
BASELINE = ROOT / "reports" / "baselines" / "path_shape.json"
GATED_ARM = "linearised metric"
# the gate reads the per-question caption match: at the ci profile's K = 65 the whole-caption
# `alignment` of every arm is near 0 (shapes are lost by the tokenizer), so it cannot show a drop
GATE_METRIC = "alignment_dpg"


def _clean_frames_only(model, batch, x_t, t, all_real=None):
    """ursa.train.token_loss_sum with its frame weights inverted (t >= 1 for t < 1): the loss then
    counts clean frames only, every step still runs and the loss falls, and the model learns
    nothing about denoising. A one-character bug in a loss weight."""
    x1 = batch.visual_ids
    if all_real is None:
        all_real = bool(batch.text_mask.all())
    weights = (t[:, :, None, None] >= 1.0).float().expand(x1.shape)
    mask = None if all_real else batch.text_mask
    return model(batch.text_ids, x_t, mask, targets=x1, weights=weights)


def test_gate_passes_on_this_code_and_fails_on_a_learning_regression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """What CI gates on: path_shape's `ci` profile (every path arm learns), run as the README says,
    passes `check` against the committed baseline; the same runs with one arm retrained under a
    broken loss weight (inside ursa.train, in this process: the in-process executor) fail it on
    that arm's per-question alignment (GATE_METRIC), and not on train_loss (which the bug lowers)."""
    from harness.cli import main as harness_main
    from harness.store import load_results, reset_run

    runs = tmp_path / "runs"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(SPEC_FILE),
            "--profile",
            "ci",
            "--runs-root",
            str(runs),
            "--no-report",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-3000:]
    spec = load_spec(SPEC_FILE)
    df = load_results(runs, spec.name, "ci")
    trained = df[df["reference"].isna()]
    floor = float(df.loc[df["arm"] == "ref:shuffled", f"metric.{GATE_METRIC}"].iloc[0])
    learnt = trained[f"metric.{GATE_METRIC}"] > floor + 0.1  # every path arm learns
    assert learnt.all(), trained[["arm", f"metric.{GATE_METRIC}"]]
    assert check(spec, runs, "ci", BASELINE) == 0, capsys.readouterr().out

    broken = tmp_path / "broken"
    shutil.copytree(runs, broken, symlinks=True)
    reset_run(broken, spec.name, "ci", str(df.loc[df["arm"] == GATED_ARM, "run_id"].iloc[0]))
    monkeypatch.setattr("ursa.train.token_loss_sum", _clean_frames_only)
    assert (
        harness_main(
            [
                "run",
                str(SPEC_FILE),
                "--profile",
                "ci",
                "--runs-root",
                str(broken),
                "--executor",
                "inprocess",
                "--no-report",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert check(spec, broken, "ci", BASELINE) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if "regressed" in line]
    assert failed and all(GATED_ARM in line for line in failed), failed
    assert any(line.lstrip().startswith(f"{GATE_METRIC} ") for line in failed), failed
    assert not any(line.lstrip().startswith("train_loss") for line in failed), failed
