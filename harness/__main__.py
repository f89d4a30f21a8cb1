"""Entry point: python -m harness ...

SIGINT and SIGTERM are handled from the first instruction: before the CLI imports anything heavy
(torch takes seconds), a signal ends the command with one line and exit code 130, no traceback."""

import signal
import sys


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


signal.signal(signal.SIGINT, _interrupt)
signal.signal(signal.SIGTERM, _interrupt)
try:
    from harness.cli import main
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
sys.exit(main())
