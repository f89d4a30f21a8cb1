"""Dispatch: the local executor's concurrency cap and time limit, and Checkpointable requeue."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from harness_fixtures import seeded_runs_root, tiny_spec
from submitit.helpers import DelayedSubmission

from harness.cpu import PINS, host_flags, pinnable
from harness.dispatch import dispatch
from harness.records import RunState
from harness.runner import plan, prepare_run_dir
from harness.spec import ExecutorConfig
from harness.specfile import load_spec
from harness.worker import RunTask


def test_checkpoint_resubmits_the_same_run(tmp_path: Path) -> None:
    task = RunTask(tmp_path, tmp_path / "run", threads=1)
    delayed = task.checkpoint()
    assert isinstance(delayed, DelayedSubmission)
    assert isinstance(delayed.function, RunTask) and delayed.function.run_dir == task.run_dir


def test_local_executor_caps_parallelism_and_records_results(
    tmp_path: Path, tmp_path_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PINS:  # dispatch() itself must pin the workers' kernels (harness/cpu.py)
        monkeypatch.delenv(name, raising=False)
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec = load_spec(tiny_spec(tmp_path / "s.yaml", steps=2, seeds=[0, 1, 2]))
    runs = plan(spec, "default", root, references=False)
    tasks = [RunTask(root, prepare_run_dir(r, root)) for r in runs]
    results = dispatch(
        tasks,
        ExecutorConfig(kind="local", max_parallel=1, timeout_min=10),
        tmp_path / "jobs",
        progress=False,
    )
    assert [r.state for r in results] == [RunState.DONE] * 3, [r.error for r in results]
    spans = sorted((r.started, r.finished) for r in results)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), (
        f"runs overlapped with max_parallel=1: {spans}"
    )
    assert len({r.pid for r in results}) == 3  # each run in its own subprocess
    for task, r in zip(
        tasks, results
    ):  # what decides the numbers is recorded: by the result and by the train stage
        assert r.machine["threads"] == task.threads and r.machine["versions"]["torch"]
        trained = json.loads((Path(task.run_dir) / "stages" / "train" / "done.json").read_text())
        assert trained["machine"]["capability"] == r.machine["capability"]
        if pinnable(host_flags()):
            assert r.machine["capability"] == "AVX2" and r.machine["pinned"], r.machine


@pytest.mark.slow  # ~30 s: submitit's local controller takes its time to notice and kill a timed-out job
def test_local_timeout_marks_run_failed(tmp_path: Path, tmp_path_factory) -> None:
    """A run killed by the executor's time limit leaves state 'failed', not 'running'."""
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec = load_spec(tiny_spec(tmp_path / "s.yaml", steps=10_000))
    run = plan(spec, "default", root, references=False)[0]
    task = RunTask(root, prepare_run_dir(run, root))
    # 0.05 min = 3 s, no requeue (with max_requeue > 0 the Checkpointable is resubmitted and resumes)
    result = dispatch(
        [task],
        ExecutorConfig(kind="local", timeout_min=0.05, max_requeue=0),
        tmp_path / "jobs",
        progress=False,
    )[0]
    assert result.state == RunState.FAILED and result.error["message"]


def test_slurm_task_ranks_replace_a_stray_rendezvous_from_the_submitter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SLURM passes the submitter's environment through: a MASTER_PORT / RANK left there (a shell
    that ran torchrun) is replaced by the job's own (before: RuntimeError from submitit's export)."""
    from harness.worker import _export_job_ranks

    slurm = dict(
        SUBMITIT_EXECUTOR="slurm",
        SLURM_JOB_ID="42",
        SLURM_NTASKS="2",
        SLURM_PROCID="1",
        SLURM_LOCALID="1",
        SLURM_JOB_NODELIST="nodeA",
        SLURM_NNODES="1",
        SLURM_NODEID="0",
        SLURM_JOB_NUM_NODES="1",
    )
    for key, value in {**slurm, "MASTER_PORT": "1", "RANK": "7", "WORLD_SIZE": "9"}.items():
        monkeypatch.setenv(key, value)
    for key in ("MASTER_ADDR", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert _export_job_ranks() == 1
    port = int(os.environ["MASTER_PORT"])
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["MASTER_ADDR"]) == (
        "1",
        "2",
        "nodeA",
    )
    assert (
        20000 <= port <= 60000
    )  # submitit's port from the job id: every task of the job agrees on it
    monkeypatch.setenv(
        "SLURM_NTASKS", "1"
    )  # a single-task job (a reference run) with the same stray variables
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_LOCALID", "0")
    monkeypatch.setenv("WORLD_SIZE", "9")
    assert (
        _export_job_ranks() == 0
        and "WORLD_SIZE" not in os.environ
        and "MASTER_PORT" not in os.environ
    )


# A stand-in for submitit's job controller: it starts its worker late (as a controller submitted just
# before a stop, still importing submitit), waits for it, and writes the worker's exit code.
_LATE_CONTROLLER = """
import subprocess, sys, time
time.sleep(0.5)
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(worker.wait()))
"""


def test_a_stop_reaches_a_worker_its_controller_starts_after_the_stop_began(tmp_path: Path) -> None:
    """SIGTERM on `harness run` right after a job was submitted: the worker that job's controller
    starts a moment later still gets the stop's SIGINT (and the controller then exits on its own),
    instead of waiting out the grace period and being killed with its controller."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from harness.executors.local import stop_local_jobs

    code = tmp_path / "worker_exit_code"
    controller = subprocess.Popen([sys.executable, "-c", _LATE_CONTROLLER, str(code)])
    stop_local_jobs([SimpleNamespace(_process=controller)], grace_s=20)
    assert controller.returncode == 0, "the controller was killed at the end of the grace period"
    # ended by the SIGINT (-2, or 1 when it lands while the interpreter starts), not by the 120 s
    # sleep's end or a SIGKILL
    assert code.read_text() in ("-2", "1"), code.read_text()
