"""Entry point: python -m harness ...

SIGINT and SIGTERM are handled from the first instruction: before the CLI imports anything heavy
(torch takes seconds), a signal ends the command with one line and exit code 130, no traceback,
and without the interpreter's teardown (seconds of garbage collection after a half-made import).
The kernel pins (harness/cpu.py) go into the environment before anything imports torch, so this
process and every worker it starts run the same CPU kernels on any x86-64 host with AVX2."""

import os
import signal
import sys

_signalled: list[int] = []


def _interrupt(signum: int, frame: object) -> None:
    _signalled.append(signum)
    raise KeyboardInterrupt(signal.Signals(signum).name)


signal.signal(signal.SIGINT, _interrupt)
signal.signal(signal.SIGTERM, _interrupt)
try:
    from harness.cpu import pin

    pin()
    from harness.cli import main  # after the pin: torch reads it when first imported

    code = main()
except BaseException as exc:  # noqa: BLE001 - only after a signal, else re-raised
    # a KeyboardInterrupt raised inside a module's import (numpy's, say) can leave that module half
    # made, and the error surfaces later as another exception (numpy: a RecursionError)
    if isinstance(exc, SystemExit) or not _signalled:
        raise
    print("interrupted", file=sys.stderr)
    code = 130
if code == 130:  # interrupted: its line is printed and its workers stopped; skip the interpreter's
    # teardown, which after a signal inside torch's import spent 13 s collecting garbage on a busy host
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(130)
sys.exit(code)
