"""Dispatch runs to the registered executor `executor.kind`, with a progress bar and monitor, and
settle each run's final result (a job that died without writing one is recorded as failed or
cancelled).

Executors (harness/executors/): `inprocess`, `local` (subprocesses through submitit, whose local
executor starts every job at once and has no concurrency cap, so the harness keeps at most
`max_parallel` jobs in flight itself and sets `timeout_min` explicitly) and `slurm` (one job
array, array parallelism passed through). What a worker executes is harness/worker.py: the
submitted callable is Checkpointable, so a timed-out or preempted run is requeued and resumes
from its training checkpoint (every stage is idempotent and train resumes from
`stages/train/checkpoint`).

Local jobs die with the `harness run` that started them (harness/process_guard.py): each job's
controller runs in a session of its own with PR_SET_PDEATHSIG (Linux) and a watchdog on its
parent, and each worker the same on its controller and on the harness process, so a killed
`harness run` leaves no worker behind. Ctrl-C stops the workers (they record their run as
interrupted) before the harness exits. Whatever the executor, a worker owns its run
(harness.store.acquire_run) while it executes it: a run a live process owns is waited for, never
computed twice.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harness.cpu import pin
from harness.plugins import EXECUTORS
from harness.progress import PROGRESS, Monitor
from harness.records import RunResult, RunState
from harness.spec import ExecutorConfig
from harness.store import read_json_or_none, read_result, record_result
from harness.worker import RunTask


class DispatchError(ValueError):
    """The executor could not take the runs at all (e.g. sbatch missing or failing): a clean error, exit 2."""


def threads_per_job(config: ExecutorConfig, max_parallel: int) -> int:
    """Torch threads per run: explicit, or the cores shared out (oversubscription is much slower)."""
    return config.threads or max(1, (os.cpu_count() or 1) // max_parallel)


def settle(
    task: RunTask,
    job: Any | None,
    exc: BaseException | None,
    *,
    lost: bool = False,
    returned: Any = None,
) -> RunResult:
    """The run's final result; a job that died without writing one is recorded as failed, and as
    cancelled when SLURM says so or the job vanished from the queue (`lost`). A result that cannot
    be recorded (disk full) is reported on stderr and returned as it is."""
    rdir = Path(task.run_dir)
    result = read_result(rdir)
    if result is None or not result.state.final:
        if isinstance(returned, RunResult) and returned.state.final:
            result = returned  # the worker's own result, which it could not write
            record_result(task.runs_root, rdir, result)
            return result
    if result is None:
        meta = read_json_or_none(
            rdir / "config.json", "it is rewritten from the plan by the next `run`"
        )
        head = task.head or (meta or {}).get("run")
        if head is None:
            head = {
                "run_id": rdir.name,
                "spec": rdir.parent.parent.name,
                "profile": rdir.parent.name,
                "arm": "?",
                "seed": -1,
            }
        result = RunResult.from_json(head)
    if result.done or (exc is None and not lost and result.state == RunState.FAILED):
        return result
    state = RunState.FAILED
    if lost or (job is not None and str(getattr(job, "state", "")).upper().startswith("CANCELLED")):
        state = RunState.CANCELLED
    message = (
        f"{type(exc).__name__}: {exc}"
        if exc
        else (
            "job vanished from the SLURM queue without an accounting record (cancelled while pending)"
            if lost
            else "job ended without a result"
        )
    )
    tb = "".join(traceback.format_exception(exc)) if exc else ""
    result.fail(state, message, tb)
    record_result(task.runs_root, rdir, result)
    return result


def collect(jobs: list[tuple[RunTask, Any]], bar: tqdm) -> list[RunResult]:
    out = []
    for task, job in jobs:
        try:
            returned = job.result()
            out.append(settle(task, job, None, returned=returned))
        except Exception as exc:  # noqa: BLE001 - a failed job must not stop the others
            out.append(settle(task, job, exc))
        bar.update(1)
    return out


def dispatch(
    tasks: list[RunTask],
    config: ExecutorConfig,
    folder: str | Path,
    *,
    max_parallel: int | None = None,
    progress: bool = True,
    overall: tuple[int, int] | None = None,
) -> list[RunResult]:
    """Run every task with the registered executor `config.kind`; returns the final result of each, in order.

    `overall` (runs finished before this call, runs in all) makes the bar and log count every run of
    the caller's waves, not this call's tasks alone.

    An executor is `fn(tasks, config, folder, cap, bar) -> results` registered in plugins.EXECUTORS.
    On KeyboardInterrupt an executor stops its workers before the exception propagates."""
    run_all = EXECUTORS.get(config.kind)
    pin()  # workers started from here (local, SLURM) import torch with the pinned kernels (harness/cpu.py)
    cap = max_parallel or config.max_parallel
    if cap < 1:
        raise ValueError(f"max_parallel: expected an integer >= 1, got {cap!r}")
    folder = Path(folder)
    tty = sys.stderr.isatty()
    # a bar only on a terminal: in a log, tqdm's carriage returns are noise; the monitor writes lines
    before, total = overall or (0, len(tasks))
    shown = progress and tty
    # a hidden bar still counts (a disabled tqdm does not): the log lines read its count
    sink = None if shown else open(os.devnull, "w")  # noqa: SIM115 - closed with the bar
    bar = tqdm(
        total=total,
        initial=before,
        desc=f"runs ({config.kind})",
        unit="run",
        file=sink or sys.stderr,
    )

    def active() -> list[tuple[str, Path]]:
        return [
            (_label(task), Path(task.run_dir))
            for task in tasks
            if (Path(task.run_dir) / PROGRESS).exists()
        ]

    def log(line: str) -> None:
        print(f"[runs] {bar.n}/{total} finished; {line}", file=sys.stderr, flush=True)

    try:
        if not progress:
            return run_all(tasks, config, folder, cap, bar)
        every = float(
            os.environ.get("URSA_PROGRESS_LOG_S", "30")
        )  # seconds between [progress] lines in a log
        with Monitor(
            active,
            tty=tty,
            set_postfix=lambda text: bar.set_postfix_str(text, refresh=True),
            log=log,
            interval_s=min(1.0, max(every, 0.05)),
            log_every_s=every,
        ):
            return run_all(tasks, config, folder, cap, bar)
    finally:
        bar.close()
        if sink is not None:
            sink.close()


def _label(task: RunTask) -> str:
    """'arm s<seed>' of a task (its run id prefix when the plan's head is not at hand)."""
    head = task.head or {}
    return (
        f"{head['arm']} s{head['seed']}"
        if "arm" in head and "seed" in head
        else Path(task.run_dir).name[:10]
    )
