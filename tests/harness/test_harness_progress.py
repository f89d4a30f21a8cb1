"""Live progress: workers write <run_dir>/progress.json, `run` and `status` show it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness_fixtures import seeded_runs_root, tiny_spec

from harness import progress
from harness.cli import main


def test_progress_file_is_throttled_atomic_and_removed(tmp_path: Path) -> None:
    with progress.reporting(tmp_path) as pf:
        progress.update("train", 1, 100, 3.5)
        first = progress.read(tmp_path)
        assert first["stage"] == "train" and first["step"] == 1 and first["loss"] == 3.5
        progress.update("train", 2, 100, 3.4)  # within a second of the last write: skipped
        assert progress.read(tmp_path)["step"] == 1
        progress.update("train", 100, 100, 1.0)  # the last step is always written
        assert progress.read(tmp_path)["step"] == 100
        progress.update("sample", 0, 4)  # a new stage is always written
        assert progress.read(tmp_path)["stage"] == "sample"
        assert pf.path == tmp_path / progress.PROGRESS
    assert progress.read(tmp_path) is None and not list(tmp_path.iterdir())
    progress.update("train", 1, 2)  # outside `reporting`: a no-op, nothing written
    assert not list(tmp_path.iterdir())


def test_describe_states_step_loss_and_eta() -> None:
    record = {
        "stage": "train",
        "step": 30,
        "total": 130,
        "loss": 2.25,
        "first_step": 10,
        "stage_started": 1000.0,
        "updated": 1040.0,
    }
    # 20 steps in 40 s -> 2 s per step, 100 steps left -> 200 s
    assert progress.describe(record, now=1041.0) == "train 30/130 loss 2.2500 ETA 3m20s"
    assert progress.describe({**record, "step": 130}, now=1041.0) == "train 130/130 loss 2.2500"
    assert "no update for 10m00s" in progress.describe(record, now=1640.0)
    assert progress.describe({"stage": "sample", "step": 0, "total": 4}) == "sample 0/4"


@pytest.mark.parametrize("content", ["", "{", "[1, 2]", '{"stage": "train"}', "\xff\xfe"])
def test_unreadable_progress_is_none(tmp_path: Path, content: str) -> None:
    (tmp_path / progress.PROGRESS).write_text(content, errors="surrogateescape")
    assert progress.read(tmp_path) is None


def test_monitor_logs_plain_lines_without_a_terminal(tmp_path: Path) -> None:
    run = tmp_path / "r1"
    run.mkdir()
    progress.ProgressFile(run).update("train", 5, 10, 1.5)
    lines: list[str] = []
    with progress.Monitor(
        lambda: [("masked s0", run), ("absent s1", tmp_path / "r2")],
        tty=False,
        set_postfix=lambda s: pytest.fail("no bar without a terminal"),
        log=lines.append,
        interval_s=0.01,
        log_every_s=0.0,
    ):
        import time

        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
    assert lines and lines[0].startswith("[progress] masked s0: train 5/10 loss 1.5000")
    assert not any("absent" in line for line in lines)


def test_run_logs_progress_lines_and_status_shows_running_runs(
    tmp_path: Path, tmp_path_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    """A non-TTY `run` (this test's stderr is captured) prints `[progress]` lines, no bar escapes; the
    progress file is gone once the run is recorded; `status` shows a running run's progress."""
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec = tiny_spec(tmp_path / "tiny.yaml", steps=60, checkpoint_every=20)
    env = {"URSA_PROGRESS_LOG_S": "0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(spec),
            "--runs-root",
            str(root),
            "--no-report",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[progress] " in proc.stderr and " s0: train " in proc.stderr, proc.stderr
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr
    assert not list(root.glob("tiny/default/*/progress.json"))
    # a run recorded as running, with a live progress file, shows its progress in `status`
    rdir = next(p for p in root.glob("tiny/default/*") if (p / "result.json").is_file())
    result = json.loads((rdir / "result.json").read_text())
    (rdir / "result.json").write_text(json.dumps({**result, "state": "running"}))
    progress.ProgressFile(rdir).update("train", 7, 60, 2.0)
    from harness.store import reindex

    reindex(root)
    capsys.readouterr()
    assert main(["status", str(spec), "--runs-root", str(root)]) == 0
    assert "train 7/60 loss 2.0000" in capsys.readouterr().out


def test_monitor_logs_the_first_lines_at_once_not_after_its_period(tmp_path: Path) -> None:
    """A run shorter than the log period (30 s) still gets a [progress] line: the first one goes out
    as soon as a worker reports (waited for up to 5 s here, against a 1000 s period)."""
    run = tmp_path / "r1"
    run.mkdir()
    progress.ProgressFile(run).update("train", 1, 10, 2.0)
    lines: list[str] = []
    with progress.Monitor(
        lambda: [("masked s0", run)],
        tty=False,
        set_postfix=lambda s: None,
        log=lines.append,
        interval_s=0.01,
        log_every_s=1000.0,
    ):
        import time

        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(lines) == 1 and lines[0].startswith("[progress] masked s0: train 1/10")


def test_the_runs_count_is_one_count_over_every_wave(tmp_path: Path) -> None:
    """dispatch(overall=(finished before, total)) counts on from the earlier waves, on a terminal
    bar and in a log alike (a hidden bar still counts)."""
    from harness.dispatch import dispatch
    from harness.plugins import EXECUTORS
    from harness.spec import ExecutorConfig
    from harness.worker import RunTask

    seen: list[tuple[int, int]] = []

    def counting(tasks, config, folder, cap, bar):  # an executor: finishes each task at once
        for _ in tasks:
            seen.append((bar.n, bar.total))
            bar.update(1)
        seen.append((bar.n, bar.total))
        return [None] * len(tasks)

    EXECUTORS.register("counting_test")(counting)
    try:
        tasks = [RunTask(tmp_path, tmp_path / f"r{i}") for i in range(2)]
        dispatch(
            tasks,
            ExecutorConfig.model_construct(kind="counting_test", max_parallel=1),
            tmp_path,
            overall=(4, 6),
        )
    finally:
        EXECUTORS._items.pop("counting_test", None)
    assert seen == [(4, 6), (5, 6), (6, 6)]
