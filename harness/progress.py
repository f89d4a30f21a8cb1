"""Live progress of running runs: workers write it, `run` and `status` show it.

A worker reports its run's current stage, step / total and loss to `<run_dir>/progress.json`
(atomic, at most once a second, removed when the run ends); the process that dispatched the
run reads those files, whatever executor ran it (in-process, local processes, SLURM on a shared
file system), and renders one compact line per running run: on a terminal as the postfix of the
runs bar, in a log (not a TTY) as a plain line every `log_every_s` seconds, never bar escapes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ursa.io import atomic_write_json

PROGRESS = "progress.json"
_WRITE_EVERY_S = 1.0

_current: ProgressFile | None = None


class ProgressFile:
    """The worker side: throttled, atomic writes of one run's progress."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / PROGRESS
        self.stage = ""
        self.stage_started = time.time()
        self.first_step = 0
        self.written = 0.0

    def update(
        self, stage: str, step: int, total: int, loss: float | None = None, force: bool = False
    ) -> None:
        now = time.time()
        if (
            stage != self.stage
        ):  # the ETA of a stage counts from its own start (and its first step, on resume)
            self.stage, self.stage_started, self.first_step, force = stage, now, step, True
        if not force and step < total and now - self.written < _WRITE_EVERY_S:
            return
        self.written = now
        record = {
            "stage": stage,
            "step": step,
            "total": total,
            "loss": loss,
            "pid": os.getpid(),
            "stage_started": self.stage_started,
            "first_step": self.first_step,
            "updated": now,
        }
        try:
            atomic_write_json(self.path, record)
        except OSError:
            pass  # progress is a convenience: a full disk must fail the run's real writes, not this

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


@contextmanager
def reporting(run_dir: Path) -> Iterator[ProgressFile]:
    """Make `update` write `run_dir`'s progress while the block runs; the file goes at the end."""
    global _current
    previous, _current = _current, ProgressFile(run_dir)
    try:
        yield _current
    finally:
        _current.close()
        _current = previous


def update(stage: str, step: int, total: int, loss: float | None = None) -> None:
    """Report progress of the run being computed in this process (a no-op outside `reporting`)."""
    if _current is not None:
        _current.update(stage, step, total, loss)


def read(run_dir: Path | str) -> dict[str, Any] | None:
    """The progress a worker last wrote for a run, or None (none, or unreadable: it is advisory)."""
    try:
        record = json.loads((Path(run_dir) / PROGRESS).read_text())
    except (OSError, ValueError):
        return None
    return (
        record if isinstance(record, dict) and {"stage", "step", "total"} <= record.keys() else None
    )


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def describe(record: dict[str, Any], now: float | None = None) -> str:
    """'train 120/1500 loss 3.2100 ETA 4m10s' (ETA from this stage's rate since it started)."""
    now = time.time() if now is None else now
    step, total = int(record["step"]), int(record["total"])
    text = f"{record['stage']} {step}/{total}"
    if record.get("loss") is not None:
        text += f" loss {float(record['loss']):.4f}"
    done = step - int(record.get("first_step", 0))
    elapsed = float(record.get("updated", now)) - float(record.get("stage_started", now))
    if 0 < done and step < total and elapsed > 0:
        text += f" ETA {_duration(elapsed / done * (total - step))}"
    quiet = now - float(record.get("updated", now))
    if quiet > 300:  # a stuck or dead worker shows as such instead of a frozen ETA
        text += f" (no update for {_duration(quiet)})"
    return text


class Monitor:
    """The dispatcher side: a daemon thread showing the progress of the runs `active()` lists.

    active() -> [(label, run_dir)] of the runs in flight. On a terminal the line goes to
    `set_postfix(text)` (the runs bar); otherwise to `log` every `log_every_s` seconds.
    """

    def __init__(
        self,
        active: Callable[[], list[tuple[str, Path]]],
        *,
        tty: bool,
        set_postfix: Callable[[str], None],
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
        interval_s: float = 1.0,
        log_every_s: float = 30.0,
    ) -> None:
        self.active, self.tty, self.set_postfix, self.log = active, tty, set_postfix, log
        self.interval_s, self.log_every_s = interval_s, log_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="harness-progress", daemon=True)

    def lines(self) -> list[str]:
        out = []
        for label, rdir in self.active():
            record = read(rdir)
            if record is not None:
                out.append(f"{label}: {describe(record)}")
        return out

    def _loop(self) -> None:
        last_log = -math.inf  # the first lines go out at once: runs under 30 s get one too
        while not self._stop.wait(self.interval_s):
            try:
                lines = self.lines()
                if self.tty:
                    shown = " | ".join(lines[:3]) + (
                        f" | +{len(lines) - 3} more" if len(lines) > 3 else ""
                    )
                    self.set_postfix(shown)
                elif lines and time.monotonic() - last_log >= self.log_every_s:
                    last_log = time.monotonic()
                    for line in lines:
                        self.log(f"[progress] {line}")
            except Exception:  # noqa: BLE001 - a display must never take a run down
                pass

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
