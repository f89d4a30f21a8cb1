"""The controller of one local job: submitit's, but dying with the `harness run` that started it
(PR_SET_PDEATHSIG and a watchdog on its parent); its workers die with it the same way.

Run by the `local` executor as `python -m harness.executors.local_controller <job folder> <parent pid>`;
it imports nothing heavy (this package's __init__ is empty), so a job starts as fast as before.
"""

from __future__ import annotations

import sys
from pathlib import Path

from submitit.local.local import Controller

from harness.process_guard import guard_worker


def main(folder: str, parent: str) -> None:
    guard_worker(int(parent), None)  # exits at once when the parent already died
    Controller(Path(folder)).run()


if __name__ == "__main__":
    main(*sys.argv[1:3])
