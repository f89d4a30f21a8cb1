"""Entry point: python -m harness ...

The kernel pins (harness/cpu.py) go into the environment before anything imports torch, so this
process and every worker it starts run the same CPU kernels on any x86-64 host with AVX2."""

import sys

from harness.cpu import pin

pin()

from harness.cli import main  # noqa: E402 - after the pin: torch reads it when first imported

sys.exit(main())
