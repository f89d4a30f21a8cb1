"""What a worker process executes: every missing stage of one run directory (RunTask), owning the
run while it does (harness.store.acquire_run), so a run a live process owns is waited for, never
computed twice. Picklable, so any executor can ship it; Checkpointable, so a timed-out or
preempted SLURM job is requeued and resumes from its stages' on-disk state."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission

from harness.process_guard import guard_worker
from harness.records import RunResult, RunState
from harness.store import acquire_run, read_result, sweep_temps, warn


class RunTask(Checkpointable):
    """Execute every missing stage of one run directory; picklable (paths and plain values only).

    `head` is the run's identity (RunResult json) to report it by when its files are unreadable;
    `seen_finished` the `finished` time of the result the dispatcher saw (a failed run it retries):
    a run another process finished since is returned as it is, not computed again; `watch`
    (pid, start time) is the local `harness run` the worker must not outlive."""

    def __init__(
        self,
        runs_root: str | Path,
        run_dir: str | Path,
        threads: int = 0,
        head: dict | None = None,
        seen_finished: float | None = None,
        watch: tuple[int, str | None] | None = None,
        processes: int = 1,
    ) -> None:
        self.runs_root = str(runs_root)
        self.processes = processes  # local processes that train the run (executor.tasks_per_node)
        self.run_dir = str(run_dir)
        self.threads = threads
        self.head = head
        self.seen_finished = seen_finished
        self.watch = watch

    def __call__(self) -> RunResult | None:
        from harness.stages import follow_training, train_device
        from ursa import distributed

        if self.watch is not None and os.environ.get("SUBMITIT_LOCAL_JOB_ID", "").isdigit():
            guard_worker(int(os.environ["SUBMITIT_LOCAL_JOB_ID"]), self.watch)
        rdir = Path(self.run_dir)
        rank = _export_job_ranks()
        if rank > 0:  # one rank of a multi-task SLURM job: it only joins rank 0's training
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            follow_training(self.runs_root, rdir)
            return None
        try:
            return self._run(rdir)
        finally:  # ranks still waiting learn there is no (more) training to join
            distributed.announce(False, train_device(rdir))

    def _run(self, rdir: Path) -> RunResult:
        from harness.stages import run_stages

        with acquire_run(
            rdir, on_wait=lambda owner: warn(f"{rdir}: owned by {owner}; waiting for it")
        ):
            current = read_result(rdir)
            if current is not None and (
                current.done
                or (current.state == RunState.FAILED and current.finished != self.seen_finished)
            ):
                return current  # finished by another process while this one was queued or waiting
            sweep_temps(
                rdir, locked=True
            )  # the run directory is ours: leftovers of killed writers go
            for link in (rdir / "stages").glob(
                "*"
            ):  # shared stages: what dead processes of this host left
                if link.is_symlink() and link.is_dir():
                    sweep_temps(link.resolve(), locked=False)
            if (
                self.threads
            ):  # a worker process owns its share of the cores, set here (not in library code)
                import torch

                torch.set_num_threads(self.threads)
            return run_stages(self.runs_root, rdir, self.processes)

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """On timeout / preemption: resubmit this task; stages resume from their on-disk state."""
        return DelayedSubmission(copy.copy(self))


_RENDEZVOUS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


def _export_job_ranks() -> int:
    """In a SLURM job of several tasks: export RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
    MASTER_PORT (submitit's TorchDistributedEnvironment; every task sees all GPUs of its node and
    ursa.distributed pins cuda:LOCAL_RANK) and return this task's rank; 0 anywhere else. They are
    replaced, and removed in a single-task job: SLURM passes the submitter's environment through,
    and a stray MASTER_PORT, RANK or WORLD_SIZE there (a shell that ran torchrun) must neither stop
    the export, nor name this job's rendezvous, nor make one process wait for peers."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return 0
    for key in _RENDEZVOUS:  # the submitter's, passed through by SLURM: never this job's
        os.environ.pop(key, None)
    env = submitit.JobEnvironment()
    if env.num_tasks <= 1:
        return 0  # one process: no WORLD_SIZE left to make it wait for peers
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # the port from the job id
    return env.global_rank
