"""Local workers that never outlive the `harness run` that started them: process identity from
/proc (pid and start time, which survive pid reuse), PR_SET_PDEATHSIG through prctl, a watchdog
thread on the parent, the children of a process, and a Ctrl-C held off during clean-up."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PR_SET_PDEATHSIG = 1


def proc_start_time(pid: int) -> str | None:
    """The start time of process `pid` (field 22 of /proc/<pid>/stat), None if it does not exist;
    (pid, start time) names a process even after its pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]


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
    fields = stat[stat.rindex(")") + 2 :].split()
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


def children(pid: int) -> list[int]:
    """The pids of the direct children of `pid` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def cmdline(pid: int) -> bytes:
    """The command line of `pid` from /proc (b"" once it has exited): a pid with a new command line
    is a new program (a forked child after its exec)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def send_signal(pid: int, sig: int) -> None:
    """os.kill that ignores a process already gone (or no longer ours)."""
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
