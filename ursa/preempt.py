"""Preemption of a training run: the signal that announces it is noted, every process stops at the
same step boundary, writes that step's checkpoint, and only then lets the signal take its course.

SLURM sends USR2 (`--signal=USR2@<s>`, before a time limit) or SIGTERM (preemption) to every task
of a job. Without this, the default action of either kills a process mid-step (or submitit's
handler requeues from rank 0 alone while the other tasks die), and everything since the last
periodic checkpoint is lost. Here the handler only records the signal; `Watch.agreed` (a tiny CPU
all-reduce at each step boundary, so one rank's signal stops them all at the same step) tells the
loop to checkpoint, and `Watch.hand_over` then passes the signal to the Python handler that was
installed before (submitit's on rank 0: pickle the job and requeue it, then exit) and raises
`Preempted` where that handler returns. Lost work: none of the finished steps; the step running
when the signal came is completed first.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from ursa import distributed

SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


class Preempted(RuntimeError):
    """Training stopped at a step boundary on a preemption signal, after every process wrote the
    checkpoint of that step; rerunning resumes from it."""


class Watch:
    """Within `with Watch():` the preemption signals are noted instead of acted on (main thread
    only: elsewhere signals cannot be caught, and the watch never fires)."""

    def __init__(self, signals: tuple[signal.Signals, ...] = SIGNALS) -> None:
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Watch:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def agreed(self) -> int:
        """The signal any process received (the largest number, so every rank names the same one),
        0 for none: a collective of every rank at each step boundary (an all-reduce of one CPU
        int, no device sync)."""
        return distributed.host_max(self.received or 0)

    def hand_over(self, step: int, signum: int) -> None:
        """After every rank wrote the checkpoint of `step`: `signum` (what `agreed` returned) goes to
        the Python handler installed before this watch, on every rank. submitit's on rank 0
        pickles the job, runs `scontrol requeue` and exits; on other ranks it returns, and so does
        its handler of SIGTERM (SLURM's preemption: SLURM requeues and ends the job itself): training
        then goes on until the job is ended, with nothing lost. Without a Python handler (the
        default action) training stops here: Preempted."""
        self.received = None
        handler = self._previous.get(signum)
        if callable(handler):
            handler(signum, None)
            return
        raise Preempted(
            f"training stopped after step {step} on {signal.Signals(signum).name}; every process wrote "
            f"the checkpoint of step {step}, from which a rerun resumes"
        )
