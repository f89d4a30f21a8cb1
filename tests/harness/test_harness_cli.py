"""CLI: validate exit codes, and the CI gate: path_shape smoke run + report + check vs the committed baseline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "reports" / "baselines" / "path_shape.json"


def harness(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_validate_ok_and_bad_spec(tmp_path: Path) -> None:
    ok = harness("validate", "ablations/path_shape.yaml", "--profile", "smoke")
    assert ok.returncode == 0 and "3 runs" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbase:\n  train: {shfit: 2}\n")
    res = harness("validate", str(bad))
    assert res.returncode == 2 and "Did you mean 'shift'" in res.stderr and "Traceback" not in res.stderr


def test_smoke_path_shape_matches_baseline(tmp_path: Path) -> None:
    """What CI runs: smoke profile end to end (run + report), then `check` against the committed baseline."""
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    start = time.perf_counter()
    res = harness("run", "ablations/path_shape.yaml", "--profile", "smoke", "--runs-root", str(runs),
                  "--reports-dir", str(reports), "--no-progress")
    elapsed = time.perf_counter() - start
    assert res.returncode == 0, res.stderr[-3000:]
    report = (reports / "path_shape" / "report.md").read_text()
    for arm in ("path.kind=masked", "path.kind=mixture", "path.kind=metric", "ref:real", "ref:random"):
        assert arm in report, arm
    assert (reports / "path_shape" / "report.html").exists() and (reports / "path_shape" / "results.csv").exists()
    print(f"smoke run + report: {elapsed:.1f} s")

    start = time.perf_counter()
    again = harness("run", "ablations/path_shape.yaml", "--profile", "smoke", "--runs-root", str(runs),
                    "--reports-dir", str(reports), "--no-progress", "--no-report")
    assert again.returncode == 0 and "0 dispatched" in again.stdout
    assert time.perf_counter() - start < 5.0 + 3.0, "rerun of a completed spec must recompute nothing"  # +3 s interpreter start

    status = harness("status", "ablations/path_shape.yaml", "--profile", "smoke", "--runs-root", str(runs))
    assert status.returncode == 0 and "train,sample,score" in status.stdout

    check = harness("check", "ablations/path_shape.yaml", "--profile", "smoke", "--runs-root", str(runs),
                    "--baseline", str(BASELINE))
    assert check.returncode == 0, check.stdout + check.stderr

    # a baseline the results do not meet must fail the gate
    tampered = json.loads(BASELINE.read_text())
    _shift_first_metric(tampered)
    bad = tmp_path / "bad_baseline.json"
    bad.write_text(json.dumps(tampered))
    failed = harness("check", "ablations/path_shape.yaml", "--profile", "smoke", "--runs-root", str(runs),
                     "--baseline", str(bad))
    assert failed.returncode == 1, failed.stdout


def _shift_first_metric(baseline: dict) -> None:
    """Make the first metric's first arm 10 units better than anything reachable (in place)."""
    entry = next(iter(baseline["metrics"].values()))
    arm = next(iter(entry["arms"]))
    entry["arms"][arm] += 10.0 if entry["direction"] == "higher" else -10.0


@pytest.mark.parametrize("args", [["status", "ablations/path_shape.yaml"], ["ls"]])
def test_status_and_ls_on_empty_store(tmp_path: Path, args: list[str]) -> None:
    res = harness(*args, "--runs-root", str(tmp_path))
    assert res.returncode == 0 and "no runs" in res.stdout
