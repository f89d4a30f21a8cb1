"""Test-wide settings.

One intra-op thread: the tiny models here are dominated by thread synchronisation when
several threads fight over 2 cores (observed 25-100x slowdowns), and one thread keeps CPU
results bitwise reproducible across machines with different core counts. Subprocesses the
tests start (harness local executor, SLURM jobs) inherit the environment variable. The CPU
kernel pins of `python -m harness` (harness/cpu.py) are set before torch is imported, so
in-process runs here compute what the CLI computes.
"""

import os

from harness.cpu import pin

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
pin()

import torch  # noqa: E402

torch.set_num_threads(1)

# CI replays the same examples every run (a fuzz finding must not flip CI at random); locally
# hypothesis explores new examples each run and saves failures to .hypothesis/.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
