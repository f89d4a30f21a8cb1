"""Dispatch runs through submitit: in-process, local subprocesses, or SLURM job arrays.

submitit's local executor starts every job at once and has no concurrency cap, so the harness
keeps at most `max_parallel` jobs in flight itself and sets `timeout_min` explicitly. On SLURM
runs go out as one job array (array parallelism passed through); the submitted callable is
Checkpointable, so a timed-out or preempted run is requeued and resumes from its training
checkpoint (every stage is idempotent and train resumes from `stages/train/checkpoint`).
"""

from __future__ import annotations

import os
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission
from tqdm import tqdm

from harness.plugins import EXECUTORS
from harness.spec import ExecutorConfig
from harness.records import RunResult, RunState
from harness.store import read_json, read_result, write_result


class RunTask(Checkpointable):
    """Execute every missing stage of one run directory; picklable (paths and ints only)."""

    def __init__(self, runs_root: str | Path, run_dir: str | Path, threads: int = 0, progress: bool = False) -> None:
        self.runs_root = str(runs_root)
        self.run_dir = str(run_dir)
        self.threads = threads
        self.progress = progress

    def __call__(self) -> RunResult:
        from harness.stages import run_stages

        if self.threads:  # a worker process owns its share of the cores, set here (not in library code)
            import torch

            torch.set_num_threads(self.threads)
        return run_stages(self.runs_root, Path(self.run_dir), progress=self.progress)

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """On timeout / preemption: resubmit this task; stages resume from their on-disk state."""
        return DelayedSubmission(RunTask(self.runs_root, self.run_dir, self.threads, self.progress))


def _threads_per_job(config: ExecutorConfig, max_parallel: int) -> int:
    """Torch threads per run: explicit, or the cores shared out (oversubscription is much slower)."""
    return config.threads or max(1, (os.cpu_count() or 1) // max_parallel)


def _settle(task: RunTask, job: Any | None, exc: BaseException | None, *, lost: bool = False) -> RunResult:
    """The run's final result; a job that died without writing one is recorded as failed, and as
    cancelled when SLURM says so or the job vanished from the queue (`lost`)."""
    rdir = Path(task.run_dir)
    result = read_result(rdir) or RunResult.from_json(read_json(rdir / "config.json")["run"])
    if result.done or (exc is None and not lost and result.state == RunState.FAILED):
        return result
    state = RunState.FAILED
    if lost or (job is not None and str(getattr(job, "state", "")).upper().startswith("CANCELLED")):
        state = RunState.CANCELLED
    message = f"{type(exc).__name__}: {exc}" if exc else (
        "job vanished from the SLURM queue without an accounting record (cancelled while pending)" if lost
        else "job ended without a result")
    tb = "".join(traceback.format_exception(exc)) if exc else ""
    result.fail(state, message, tb)
    write_result(task.runs_root, rdir, result)
    return result


def _wait(jobs: list[tuple[RunTask, Any]], bar: tqdm) -> list[RunResult]:
    out = []
    for task, job in jobs:
        try:
            job.result()
            out.append(_settle(task, job, None))
        except Exception as exc:  # noqa: BLE001 - a failed job must not stop the others
            out.append(_settle(task, job, exc))
        bar.update(1)
    return out


def _in_squeue(job_id: str) -> bool:
    """Whether SLURM still lists the job (pending or running)."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job_id)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: keep waiting rather than declare it lost
    return out.returncode == 0 and bool(out.stdout.strip())


def _wait_slurm(jobs: list[tuple[RunTask, Any]], bar: tqdm, poll_s: float = 2.0) -> list[RunResult]:
    """Poll every job until it is done or lost. An array task cancelled while still pending gets no
    accounting record (Slurm 22.05), so submitit would report UNKNOWN forever and a blocking
    `job.result()` would hang: such a job is settled as cancelled once it has been absent from
    squeue for $URSA_SLURM_LOST_AFTER_S seconds (default 60; accounting may lag squeue)."""
    lost_after = float(os.environ.get("URSA_SLURM_LOST_AFTER_S", "60"))
    results: dict[int, RunResult] = {}
    missing_since: dict[int, float] = {}
    while len(results) < len(jobs):
        for i, (task, job) in enumerate(jobs):
            if i in results:
                continue
            if job.done():
                results[i] = _wait([(task, job)], bar)[0]
            elif str(job.state).upper() == "UNKNOWN" and not _in_squeue(job.job_id):
                if time.monotonic() - missing_since.setdefault(i, time.monotonic()) > lost_after:
                    results[i] = _settle(task, job, None, lost=True)
                    bar.update(1)
            else:
                missing_since.pop(i, None)
        if len(results) < len(jobs):
            time.sleep(poll_s)
    return [results[i] for i in range(len(jobs))]


def dispatch(tasks: list[RunTask], config: ExecutorConfig, folder: str | Path, *,
             max_parallel: int | None = None, progress: bool = True) -> list[RunResult]:
    """Run every task with the registered executor `config.kind`; returns the final result of each, in order.

    An executor is `fn(tasks, config, folder, cap, bar) -> results` registered in plugins.EXECUTORS."""
    run_all = EXECUTORS.get(config.kind)
    cap = max_parallel or config.max_parallel
    if cap < 1:
        raise ValueError(f"max_parallel: expected an integer >= 1, got {cap!r}")
    folder = Path(folder)
    bar = tqdm(total=len(tasks), desc=f"runs ({config.kind})", disable=not progress, unit="run")
    try:
        return run_all(tasks, config, folder, cap, bar)
    finally:
        bar.close()


@EXECUTORS.register("inprocess")
def _dispatch_inprocess(tasks: list[RunTask], config: ExecutorConfig, folder: Path, cap: int,
                        bar: tqdm) -> list[RunResult]:
    """One after the other in this process (debugging, tests, tiny grids)."""
    results = []
    for task in tasks:
        task.threads = task.threads or _threads_per_job(config, 1)
        try:
            task()
            results.append(_settle(task, None, None))
        except Exception as exc:  # noqa: BLE001
            results.append(_settle(task, None, exc))
        bar.update(1)
    return results


@EXECUTORS.register("local")
def _dispatch_local(tasks: list[RunTask], config: ExecutorConfig, folder: Path, cap: int,
                    bar: tqdm) -> list[RunResult]:
    """Local subprocesses, at most `cap` in flight (a sliding window, not waves)."""
    executor = submitit.LocalExecutor(folder=folder, max_num_timeout=config.max_requeue)
    executor.update_parameters(timeout_min=config.timeout_min)
    threads = _threads_per_job(config, cap)
    results: dict[int, RunResult] = {}
    pending = list(enumerate(tasks))
    running: list[tuple[int, RunTask, Any]] = []
    while pending or running:
        while pending and len(running) < cap:
            i, task = pending.pop(0)
            task.threads = task.threads or threads
            running.append((i, task, executor.submit(task)))
        for item in [r for r in running if r[2].done()]:
            running.remove(item)
            i, task, job = item
            results[i] = _wait([(task, job)], bar)[0]
        time.sleep(0.2)
    return [results[i] for i in range(len(tasks))]


@EXECUTORS.register("slurm")
def _dispatch_slurm(tasks: list[RunTask], config: ExecutorConfig, folder: Path, cap: int,
                    bar: tqdm) -> list[RunResult]:
    """One SLURM job array; array parallelism = min(spec's array_parallelism, max_parallel)."""
    s = config.slurm
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=config.max_requeue)
    params: dict[str, Any] = dict(timeout_min=int(config.timeout_min), gpus_per_node=s.gpus_per_node,
                                  cpus_per_task=s.cpus_per_task, mem_gb=s.mem_gb, nodes=1, tasks_per_node=1,
                                  slurm_array_parallelism=min(s.array_parallelism, cap))
    if s.partition:
        params["slurm_partition"] = s.partition
    if s.additional:
        params["slurm_additional_parameters"] = dict(s.additional)
    executor.update_parameters(**params)
    for task in tasks:
        task.threads = task.threads or config.threads or s.cpus_per_task
    with executor.batch():
        jobs = [executor.submit(task) for task in tasks]
    return _wait_slurm(list(zip(tasks, jobs)), bar)
