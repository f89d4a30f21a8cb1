"""The `inprocess` executor: runs one after the other in this process (debugging, tests, tiny grids)."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from harness.cpu import warn_if_unpinned
from harness.dispatch import settle, threads_per_job
from harness.plugins import EXECUTORS
from harness.records import RunResult
from harness.spec import ExecutorConfig
from harness.worker import RunTask


@EXECUTORS.register("inprocess")
def _dispatch_inprocess(
    tasks: list[RunTask], config: ExecutorConfig, folder: Path, cap: int, bar: tqdm
) -> list[RunResult]:
    """One after the other in this process (debugging, tests, tiny grids)."""
    warn_if_unpinned()  # this process's kernels were fixed when it imported torch
    results = []
    for task in tasks:
        task.threads = task.threads or threads_per_job(config, 1)
        task.processes = config.tasks_per_node
        try:
            returned = task()
            results.append(settle(task, None, None, returned=returned))
        except Exception as exc:  # noqa: BLE001
            results.append(settle(task, None, exc))
        bar.update(1)
    return results
