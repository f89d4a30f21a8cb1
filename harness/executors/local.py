"""The `local` executor: submitit's local jobs, at most `cap` in flight, each job's controller in
a session of its own that dies with this process (harness/executors/local_controller.py), and
Ctrl-C stopping the workers (they record their run as interrupted) before the harness exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import submitit
from submitit.local.local import LocalJob
from tqdm import tqdm

from harness.dispatch import collect, threads_per_job
from harness.plugins import EXECUTORS
from harness.process_guard import (
    children,
    cmdline,
    proc_start_time,
    send_signal,
    sigint_ignored,
)
from harness.records import RunResult
from harness.spec import ExecutorConfig
from harness.worker import RunTask

CONTROLLER = "harness.executors.local_controller"  # the module each local job's controller runs


class GuardedLocalExecutor(submitit.LocalExecutor):
    """submitit's LocalExecutor whose job controllers die with this process and run in a session of
    their own (a terminal's Ctrl-C reaches only the harness, which stops the workers itself)."""

    def _submit_command(self, command: str) -> LocalJob:
        ntasks = self.parameters.get("tasks_per_node", 1)
        n_gpus = self.parameters.get("gpus_per_node", 0)
        visible = self.parameters.get("visible_gpus", ())
        gpus = range(n_gpus) if visible == () else visible[:n_gpus]
        env = dict(os.environ)
        env.update(
            SUBMITIT_LOCAL_NTASKS=str(ntasks),
            SUBMITIT_LOCAL_COMMAND=command,
            SUBMITIT_LOCAL_TIMEOUT_S=str(int(60 * self.parameters.get("timeout_min", 2.0))),
            SUBMITIT_LOCAL_SIGNAL_DELAY_S=str(int(self.parameters.get("signal_delay_s", 30))),
            SUBMITIT_LOCAL_NODEID="0",
            SUBMITIT_LOCAL_JOB_NUM_NODES="1",
            SUBMITIT_STDERR_TO_STDOUT="1" if self.parameters.get("stderr_to_stdout", False) else "",
            SUBMITIT_EXECUTOR="local",
            CUDA_VISIBLE_DEVICES=",".join(str(k) for k in gpus),
            SUBMITIT_LOCAL_WITH_SHELL="",
        )
        process = subprocess.Popen(
            [sys.executable, "-m", CONTROLLER, str(self.folder), str(os.getpid())],
            env=env,
            start_new_session=True,
        )
        return LocalJob(
            folder=self.folder, job_id=str(process.pid), process=process, tasks=list(range(ntasks))
        )


def stop_local_jobs(jobs: list[Any], grace_s: float = 10.0) -> None:
    """Stop local jobs: SIGINT to their workers (each records its run as interrupted and removes
    its temp files), then, after `grace_s`, SIGKILL to what is left (the workers die with their
    controller). Returns once every controller has exited."""
    with sigint_ignored():
        _stop(jobs, grace_s)


def _stop(jobs: list[Any], grace_s: float) -> None:
    procs = [job._process for job in jobs if getattr(job, "_process", None) is not None]
    signalled: set[tuple[int, bytes]] = set()
    deadline = time.monotonic() + grace_s
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        # a controller submitted just before the stop starts its worker only now: signal workers
        # as they appear, or the grace runs out on a worker that never heard of the stop. A child
        # caught between fork and exec loses the signal at exec, so it is signalled again once
        # its command line changes (a pid and a command line: one program, signalled once)
        for proc in procs:
            for child in children(proc.pid) if proc.poll() is None else ():
                seen = (child, cmdline(child))
                if seen not in signalled:
                    send_signal(child, signal.SIGINT)
                    signalled.add(seen)
        time.sleep(0.1)
    for proc in procs:
        if proc.poll() is None:
            workers = children(proc.pid)
            send_signal(proc.pid, signal.SIGKILL)
            for child in workers:
                send_signal(child, signal.SIGKILL)
            proc.wait()


@EXECUTORS.register("local")
def _dispatch_local(
    tasks: list[RunTask], config: ExecutorConfig, folder: Path, cap: int, bar: tqdm
) -> list[RunResult]:
    """Local subprocesses, at most `cap` in flight (a sliding window, not waves)."""
    executor = GuardedLocalExecutor(folder=folder, max_num_timeout=config.max_requeue)
    executor.update_parameters(timeout_min=config.timeout_min)
    threads = threads_per_job(config, cap)
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
                results[i] = collect([(task, job)], bar)[0]
            time.sleep(0.2)
    except BaseException:  # Ctrl-C, or anything else: no worker outlives this call
        stop_local_jobs([job for _, _, job in running])
        raise
    return [results[i] for i in range(len(tasks))]
