"""`python -m benchmarks.perf`: chosen output, committed figures untouched, targets met / missed,
a failing suite recorded without losing the others."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from benchmarks.perf import __main__ as perf
from benchmarks.perf.targets import Target, verdicts


def test_targets_match_globs_and_say_met_missed_or_not_measured() -> None:
    t = Target("train", "step_*.eff", ">=", 0.9, "efficiency")
    assert t.rows({"step_tiny": {"eff": 0.95}, "step_0.6B": {"eff": 0.5}, "other": 1}) == [
        ("step_tiny.eff", "0.95", "met"),
        ("step_0.6B.eff", "0.5", "missed"),
    ]
    assert t.rows({"step_tiny": {"eff": None}}) == [("step_*.eff", "-", "not measured")]
    rows = verdicts({"suites": {"harness": {"grid_1000": {"seconds": 3.0}}}})
    assert (
        "harness",
        "1,000-run grid expanded and validated (<= 2)",
        "grid_1000.seconds",
        "3",
        "missed",
    ) in rows
    assert not any(r[0] == "train" for r in rows)  # suites not run are not listed


def test_cli_writes_the_chosen_folder_and_keeps_going_after_a_failed_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = types.ModuleType("fake_good")
    good.run = lambda quick, device: {
        "grid_1000": {"seconds": 0.5},
        "noop_rerun": {"rerun_with_report_s": 9.0},
    }
    bad = types.ModuleType("fake_bad")
    bad.run = lambda quick, device: 1 / 0
    monkeypatch.setitem(sys.modules, "fake_good", good)
    monkeypatch.setitem(sys.modules, "fake_bad", bad)
    monkeypatch.setattr(perf, "SUITES", {"harness": "fake_good", "paths": "fake_bad"})
    monkeypatch.chdir(tmp_path)
    committed = Path(perf.__file__).resolve().parents[2] / "reports" / "perf" / "perf.json"
    before = committed.read_bytes()
    assert perf.main(["--quick"]) == 1
    out = capsys.readouterr()
    assert (
        "| harness | 1,000-run grid expanded and validated (<= 2) | grid_1000.seconds | 0.5 | met |"
        in out.out
    )
    assert "| noop_rerun.rerun_with_report_s | 9 | missed |" in out.out
    assert "paths failed: ZeroDivisionError" in out.err
    written = list((tmp_path / "runs" / "perf").glob("cpu-*/perf.json"))
    assert len(written) == 1 and committed.read_bytes() == before
    results = json.loads(written[0].read_text())
    assert results["suites"]["paths"] == {"error": "ZeroDivisionError: division by zero"}
    assert "## Targets" in written[0].with_name("perf.md").read_text()
    assert perf.main(["--suite", "harness", "--out", str(tmp_path / "mine")]) == 0
    assert (tmp_path / "mine" / "perf.json").is_file()
