"""Dispatch runs through submitit: in-process, local subprocesses, or SLURM job arrays.

submitit's local executor starts every job at once and has no concurrency cap, so the harness
keeps at most `max_parallel` jobs in flight itself and sets `timeout_min` explicitly. On SLURM
runs go out as one job array (array parallelism passed through); the submitted callable is
Checkpointable, so a timed-out or preempted run is requeued and resumes from its training
checkpoint (every stage is idempotent and train resumes from `stages/train/checkpoint`).

Local jobs die with the `harness run` that started them: each job's controller runs in a
session of its own with PR_SET_PDEATHSIG (Linux) and a watchdog on its parent, and each worker
the same on its controller and on the harness process, so a killed `harness run` leaves no
worker behind. Ctrl-C stops the workers (they record their run as interrupted) before the
harness exits. Whatever the executor, a worker owns its run (harness.store.acquire_run) while it
executes it: a run a live process owns is waited for, never computed twice.
"""

from __future__ import annotations

import copy
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission
from submitit.local.local import LocalJob
from tqdm import tqdm

from harness.cpu import pin, warn_if_unpinned
from harness.plugins import EXECUTORS
from harness.progress import PROGRESS, Monitor
from harness.records import RunResult, RunState
from harness.spec import ExecutorConfig
from harness.store import acquire_run, read_json_or_none, read_result, record_result, sweep_temps, warn

PR_SET_PDEATHSIG = 1


class DispatchError(ValueError):
    """The executor could not take the runs at all (e.g. sbatch missing or failing): a clean error, exit 2."""


def proc_start_time(pid: int) -> str | None:
    """The start time of process `pid` (field 22 of /proc/<pid>/stat), None if it does not exist;
    (pid, start time) names a process even after its pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


def process_alive(pid: int, start: str | None) -> bool:
    """Whether the process (pid, start time) still runs (zombies count as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if not Path("/proc/self/stat").exists():  # no procfs: fall back on kill(0)
            try:
                os.kill(pid, 0)
                return True
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return False
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0] != "Z" and (start is None or fields[19] == start)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def guard_worker(parent: int, watch: tuple[int, str | None] | None, poll_s: float = 0.5) -> None:
    """Make this worker process die with its parent `parent` (PR_SET_PDEATHSIG, and a watchdog
    thread that exits when the parent pid changes) and with the process `watch` (pid, start time:
    the `harness run` that dispatched it)."""
    die_with_parent()
    if os.getppid() != parent or (watch is not None and not process_alive(*watch)):
        os._exit(1)  # the parent died before the guard was in place

    def watchdog() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent or (watch is not None and not process_alive(*watch)):
                os._exit(1)

    threading.Thread(target=watchdog, name="harness-watchdog", daemon=True).start()


class RunTask(Checkpointable):
    """Execute every missing stage of one run directory; picklable (paths and plain values only).

    `head` is the run's identity (RunResult json) to report it by when its files are unreadable;
    `seen_finished` the `finished` time of the result the dispatcher saw (a failed run it retries):
    a run another process finished since is returned as it is, not computed again; `watch`
    (pid, start time) is the local `harness run` the worker must not outlive."""

    def __init__(self, runs_root: str | Path, run_dir: str | Path, threads: int = 0,
                 head: dict | None = None, seen_finished: float | None = None,
                 watch: tuple[int, str | None] | None = None, processes: int = 1) -> None:
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

        with acquire_run(rdir, on_wait=lambda owner: warn(f"{rdir}: owned by {owner}; waiting for it")):
            current = read_result(rdir)
            if current is not None and (current.done or (current.state == RunState.FAILED
                                                          and current.finished != self.seen_finished)):
                return current  # finished by another process while this one was queued or waiting
            sweep_temps(rdir, locked=True)  # the run directory is ours: leftovers of killed writers go
            for link in (rdir / "stages").glob("*"):  # shared stages: what dead processes of this host left
                if link.is_symlink() and link.is_dir():
                    sweep_temps(link.resolve(), locked=False)
            if self.threads:  # a worker process owns its share of the cores, set here (not in library code)
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


def _threads_per_job(config: ExecutorConfig, max_parallel: int) -> int:
    """Torch threads per run: explicit, or the cores shared out (oversubscription is much slower)."""
    return config.threads or max(1, (os.cpu_count() or 1) // max_parallel)


def _settle(task: RunTask, job: Any | None, exc: BaseException | None, *, lost: bool = False,
            returned: Any = None) -> RunResult:
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
        meta = read_json_or_none(rdir / "config.json", "it is rewritten from the plan by the next `run`")
        head = task.head or (meta or {}).get("run")
        if head is None:
            head = {"run_id": rdir.name, "spec": rdir.parent.parent.name, "profile": rdir.parent.name,
                    "arm": "?", "seed": -1}
        result = RunResult.from_json(head)
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
    record_result(task.runs_root, rdir, result)
    return result


def _wait(jobs: list[tuple[RunTask, Any]], bar: tqdm) -> list[RunResult]:
    out = []
    for task, job in jobs:
        try:
            returned = job.result()
            out.append(_settle(task, job, None, returned=returned))
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
             max_parallel: int | None = None, progress: bool = True,
             overall: tuple[int, int] | None = None) -> list[RunResult]:
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
    bar = tqdm(total=total, initial=before, desc=f"runs ({config.kind})", unit="run",
               file=sink or sys.stderr)

    def active() -> list[tuple[str, Path]]:
        return [(_label(task), Path(task.run_dir)) for task in tasks if (Path(task.run_dir) / PROGRESS).exists()]

    def log(line: str) -> None:
        print(f"[runs] {bar.n}/{total} finished; {line}", file=sys.stderr, flush=True)

    try:
        if not progress:
            return run_all(tasks, config, folder, cap, bar)
        every = float(os.environ.get("URSA_PROGRESS_LOG_S", "30"))  # seconds between [progress] lines in a log
        with Monitor(active, tty=tty, set_postfix=lambda text: bar.set_postfix_str(text, refresh=True), log=log,
                     interval_s=min(1.0, max(every, 0.05)), log_every_s=every):
            return run_all(tasks, config, folder, cap, bar)
    finally:
        bar.close()
        if sink is not None:
            sink.close()


def _label(task: RunTask) -> str:
    """'arm s<seed>' of a task (its run id prefix when the plan's head is not at hand)."""
    head = task.head or {}
    return f"{head['arm']} s{head['seed']}" if "arm" in head and "seed" in head else Path(task.run_dir).name[:10]


@EXECUTORS.register("inprocess")
def _dispatch_inprocess(tasks: list[RunTask], config: ExecutorConfig, folder: Path, cap: int,
                        bar: tqdm) -> list[RunResult]:
    """One after the other in this process (debugging, tests, tiny grids)."""
    warn_if_unpinned()  # this process's kernels were fixed when it imported torch
    results = []
    for task in tasks:
        task.threads = task.threads or _threads_per_job(config, 1)
        task.processes = config.tasks_per_node
        try:
            returned = task()
            results.append(_settle(task, None, None, returned=returned))
        except Exception as exc:  # noqa: BLE001
            results.append(_settle(task, None, exc))
        bar.update(1)
    return results


# The controller of one local job: submitit's, but dying with the `harness run` that started it
# (PR_SET_PDEATHSIG and a watchdog on its parent); its workers die with it the same way.
_CONTROLLER = """
import ctypes, os, signal, sys, threading, time
from pathlib import Path
parent = int(sys.argv[2])
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != parent:
    os._exit(1)
def watchdog():
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)
threading.Thread(target=watchdog, daemon=True).start()
from submitit.local.local import Controller
Controller(Path(sys.argv[1])).run()
"""


class GuardedLocalExecutor(submitit.LocalExecutor):
    """submitit's LocalExecutor whose job controllers die with this process and run in a session of
    their own (a terminal's Ctrl-C reaches only the harness, which stops the workers itself)."""

    def _submit_command(self, command: str) -> LocalJob:
        ntasks = self.parameters.get("tasks_per_node", 1)
        n_gpus = self.parameters.get("gpus_per_node", 0)
        visible = self.parameters.get("visible_gpus", ())
        gpus = range(n_gpus) if visible == () else visible[:n_gpus]
        env = dict(os.environ)
        env.update(SUBMITIT_LOCAL_NTASKS=str(ntasks), SUBMITIT_LOCAL_COMMAND=command,
                   SUBMITIT_LOCAL_TIMEOUT_S=str(int(60 * self.parameters.get("timeout_min", 2.0))),
                   SUBMITIT_LOCAL_SIGNAL_DELAY_S=str(int(self.parameters.get("signal_delay_s", 30))),
                   SUBMITIT_LOCAL_NODEID="0", SUBMITIT_LOCAL_JOB_NUM_NODES="1",
                   SUBMITIT_STDERR_TO_STDOUT="1" if self.parameters.get("stderr_to_stdout", False) else "",
                   SUBMITIT_EXECUTOR="local", CUDA_VISIBLE_DEVICES=",".join(str(k) for k in gpus),
                   SUBMITIT_LOCAL_WITH_SHELL="")
        process = subprocess.Popen([sys.executable, "-c", _CONTROLLER, str(self.folder), str(os.getpid())],
                                   env=env, start_new_session=True)
        return LocalJob(folder=self.folder, job_id=str(process.pid), process=process, tasks=list(range(ntasks)))


def children(pid: int) -> list[int]:
    """The pids of the direct children of `pid` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """Hold off a second Ctrl-C while the first one is being cleaned up after (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_local_jobs(jobs: list[Any], grace_s: float = 10.0) -> None:
    """Stop local jobs: SIGINT to their workers (each records its run as interrupted and removes
    its temp files), then, after `grace_s`, SIGKILL to what is left (the workers die with their
    controller). Returns once every controller has exited."""
    with sigint_ignored():
        _stop(jobs, grace_s)


def _stop(jobs: list[Any], grace_s: float) -> None:
    procs = [job._process for job in jobs if getattr(job, "_process", None) is not None]
    signalled: set[int] = set()
    deadline = time.monotonic() + grace_s
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        # a controller submitted just before the stop starts its worker only now: signal workers
        # as they appear, or the grace runs out on a worker that never heard of the stop
        for proc in procs:
            for child in set(children(proc.pid)) - signalled if proc.poll() is None else ():
                _signal(child, signal.SIGINT)
                signalled.add(child)
        time.sleep(0.1)
    for proc in procs:
        if proc.poll() is None:
            workers = children(proc.pid)
            _signal(proc.pid, signal.SIGKILL)
            for child in workers:
                _signal(child, signal.SIGKILL)
            proc.wait()


@EXECUTORS.register("local")
def _dispatch_local(tasks: list[RunTask], config: ExecutorConfig, folder: Path, cap: int,
                    bar: tqdm) -> list[RunResult]:
    """Local subprocesses, at most `cap` in flight (a sliding window, not waves)."""
    executor = GuardedLocalExecutor(folder=folder, max_num_timeout=config.max_requeue)
    executor.update_parameters(timeout_min=config.timeout_min)
    threads = _threads_per_job(config, cap)
    me = (os.getpid(), proc_start_time(os.getpid()))
    results: dict[int, RunResult] = {}
    pending = list(enumerate(tasks))
    running: list[tuple[int, RunTask, Any]] = []
    try:
        while pending or running:
            while pending and len(running) < cap:
                i, task = pending.pop(0)
                task.threads = task.threads or threads
                task.watch = me
                task.processes = config.tasks_per_node
                running.append((i, task, executor.submit(task)))
            for item in [r for r in running if r[2].done()]:
                running.remove(item)
                i, task, job = item
                results[i] = _wait([(task, job)], bar)[0]
            time.sleep(0.2)
    except BaseException:  # Ctrl-C, or anything else: no worker outlives this call
        stop_local_jobs([job for _, _, job in running])
        raise
    return [results[i] for i in range(len(tasks))]


@EXECUTORS.register("slurm")
def _dispatch_slurm(tasks: list[RunTask], config: ExecutorConfig, folder: Path, cap: int,
                    bar: tqdm) -> list[RunResult]:
    """One SLURM job array; array parallelism = min(spec's array_parallelism, max_parallel). With
    executor.tasks_per_node x nodes > 1, runs that train get jobs of that many tasks (one per GPU)
    and reference runs, which train nothing, a second array of single-task jobs."""
    s = config.slurm
    params: dict[str, Any] = dict(timeout_min=int(config.timeout_min), gpus_per_node=s.gpus_per_node,
                                  cpus_per_task=s.cpus_per_task, mem_gb=s.mem_gb,
                                  slurm_array_parallelism=min(s.array_parallelism, cap))
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
            executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=config.max_requeue)
            extra = {"slurm_srun_args": ["--kill-on-bad-exit=1"]} if nodes * per_node > 1 else {}  # a failed rank ends all
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
        raise DispatchError(f"executor slurm: could not submit {len(tasks)} run(s) as a job array: "
                            f"{type(exc).__name__}: {detail}. Expected a working SLURM client (sbatch and srun on "
                            f"PATH, a reachable controller, a valid partition); the runs were left pending, so "
                            f"rerun once SLURM works, or pass --executor local.") from None
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
