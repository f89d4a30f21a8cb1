"""File locks on a directory: a shared stage (or a token shard, a score cache) is computed by one
process at a time; the kernel releases the lock of a process that dies."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def stage_lock(directory: Path) -> Iterator[None]:
    """Exclusive lock on a stage directory (blocks while another process computes that stage)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def stage_busy(directory: Path) -> bool:
    """Whether a process holds the stage lock of `directory` now."""
    try:
        fd = os.open(directory / ".lock", os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
