"""Run ownership: the process executing a run holds an exclusive lock on `<run_dir>/.owner` (pid
and host written in it). Another process skips or waits for a run a live process owns and takes
over one whose owner died (the kernel releases the lock of a dead process)."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OWNER = ".owner"


@dataclass(frozen=True)
class Owner:
    """Who holds a run: what its .owner file says (pid None when it could not be read)."""

    pid: int | None
    host: str

    def __str__(self) -> str:
        return f"pid {self.pid if self.pid is not None else '?'} on host {self.host}"


def _read_owner(path: Path) -> Owner:
    for _ in range(20):  # the holder writes its name just after taking the lock
        try:
            words = path.read_text(errors="replace").split()
        except OSError:
            words = []
        if words:
            break
        time.sleep(0.01)
    pid = int(words[0]) if words and words[0].isdigit() else None
    return Owner(pid, words[1] if len(words) > 1 else "?")


def owner_of(rdir: Path) -> Owner | None:
    """The live owner of the run in `rdir`, or None when no process holds it."""
    path = Path(rdir) / OWNER
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return _read_owner(path)
    finally:
        os.close(fd)


def wait_for_owner(rdir: Path) -> None:
    """Block until no process owns the run (returns at once when none does)."""
    try:
        fd = os.open(Path(rdir) / OWNER, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


class RunHold:
    """This process's ownership of a run (the exclusive lock on its .owner file); `waited` says
    whether another process owned it first. Released by `release()`, on exit of a `with`, or by
    the kernel when the process dies."""

    def __init__(self, path: Path, fd: int, waited: bool) -> None:
        self.path, self.fd, self.waited = path, fd, waited

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor releases the flock
            self.fd = None

    def __enter__(self) -> RunHold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_run(
    rdir: Path, *, wait: bool = True, on_wait: Callable[[Owner], None] | None = None
) -> RunHold | None:
    """Own the run in `rdir`: take the exclusive lock on rdir/.owner and write this process's pid
    and host in it. When a live process owns it: with `wait`, call on_wait(owner) and block until
    it is released; without, return None."""
    path = Path(rdir) / OWNER
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            for attempt in range(10):  # a prober's brief shared lock is not an owner
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt < 9:
                        time.sleep(0.02)
            else:
                if not wait:
                    os.close(fd)
                    return None
                if on_wait is not None and not waited:
                    on_wait(_read_owner(path))
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:  # the file may have been deleted (reset) while this process waited: lock the new one
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                path.parent.mkdir(parents=True, exist_ok=True)
                continue
            try:
                os.ftruncate(fd, 0)
                os.pwrite(
                    fd, f"{os.getpid()} {socket.gethostname()} {time.time():.0f}\n".encode(), 0
                )
            except OSError:
                pass  # a full disk: the lock holds without the name
            return RunHold(path, fd, waited)
        except BaseException:
            try:
                os.close(fd)
            except OSError:
                pass
            raise
