"""The `slurm` executor: one SLURM job array per job shape, polled until every job is done or lost
(squeue), cancelled on Ctrl-C."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit
from tqdm import tqdm

from harness.dispatch import DispatchError, collect, settle
from harness.plugins import EXECUTORS
from harness.records import RunResult
from harness.spec import ExecutorConfig
from harness.worker import RunTask


def _in_squeue(job_id: str) -> bool:
    """Whether SLURM still lists the job (pending or running)."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", str(job_id)], capture_output=True, text=True, timeout=60
        )
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
                results[i] = collect([(task, job)], bar)[0]
            elif str(job.state).upper() == "UNKNOWN" and not _in_squeue(job.job_id):
                if time.monotonic() - missing_since.setdefault(i, time.monotonic()) > lost_after:
                    results[i] = settle(task, job, None, lost=True)
                    bar.update(1)
            else:
                missing_since.pop(i, None)
        if len(results) < len(jobs):
            time.sleep(poll_s)
    return [results[i] for i in range(len(jobs))]


@EXECUTORS.register("slurm")
def _dispatch_slurm(
    tasks: list[RunTask], config: ExecutorConfig, folder: Path, cap: int, bar: tqdm
) -> list[RunResult]:
    """One SLURM job array; array parallelism = min(spec's array_parallelism, max_parallel). With
    executor.tasks_per_node x nodes > 1, runs that train get jobs of that many tasks (one per GPU)
    and reference runs, which train nothing, a second array of single-task jobs."""
    s = config.slurm
    params: dict[str, Any] = dict(
        timeout_min=int(config.timeout_min),
        gpus_per_node=s.gpus_per_node,
        cpus_per_task=s.cpus_per_task,
        mem_gb=s.mem_gb,
        slurm_array_parallelism=min(s.array_parallelism, cap),
    )
    if s.partition:
        params["slurm_partition"] = s.partition
    if s.additional:
        params["slurm_additional_parameters"] = dict(s.additional)
    shape = (config.nodes, config.tasks_per_node)
    arrays: dict[tuple[int, int], list[int]] = {}  # (nodes, tasks per node) -> indices of its runs
    for i, task in enumerate(tasks):
        task.threads = task.threads or config.threads or s.cpus_per_task
        arrays.setdefault((1, 1) if (task.head or {}).get("reference") else shape, []).append(i)
    jobs: list[Any] = [None] * len(tasks)
    try:
        for (nodes, per_node), index in arrays.items():
            executor = submitit.AutoExecutor(
                folder=folder, cluster="slurm", slurm_max_num_timeout=config.max_requeue
            )
            extra = (
                {"slurm_srun_args": ["--kill-on-bad-exit=1"]} if nodes * per_node > 1 else {}
            )  # a failed rank ends all
            executor.update_parameters(**params, nodes=nodes, tasks_per_node=per_node, **extra)
            with executor.batch():
                for i, job in zip(index, [executor.submit(tasks[i]) for i in index]):
                    jobs[i] = job
    except Exception as exc:  # noqa: BLE001 - no SLURM, or sbatch refused the array
        for job in jobs:  # an array already submitted is cancelled: the runs are all left pending
            try:
                if job is not None:
                    job.cancel(check=False)
            except Exception:  # noqa: BLE001
                pass
        detail = " ".join(str(exc).split())[:600] or type(exc).__name__
        raise DispatchError(
            f"executor slurm: could not submit {len(tasks)} run(s) as a job array: "
            f"{type(exc).__name__}: {detail}. Expected a working SLURM client (sbatch and srun on "
            f"PATH, a reachable controller, a valid partition); the runs were left pending, so "
            f"rerun once SLURM works, or pass --executor local."
        ) from None
    try:
        return _wait_slurm(list(zip(tasks, jobs)), bar)
    except BaseException:  # Ctrl-C: cancel what is still queued or running
        for job in jobs:
            try:
                if not job.done():
                    job.cancel(check=False)
            except Exception:  # noqa: BLE001
                pass
        raise
