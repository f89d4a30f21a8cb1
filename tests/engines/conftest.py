"""Session fixtures for the real engines: a local SLURM cluster and a throwaway PostgreSQL.

Both are brought up by the scripts CI uses (scripts/local_slurm.sh, scripts/local_postgres.sh)
and torn down at the end of the session, unless they were already up when the session began
(a developer's cluster is left running). A test is skipped, with the script's own error, only
when the script cannot start the service (e.g. not root and the packages are missing).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


@dataclass
class Service:
    """A running service: what clients need to reach it and how long `start` took."""

    address: str  # SLURM: the SLURM_CONF path; PostgreSQL: the SQLAlchemy URL
    start_s: float


def _script(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def _start(name: str) -> tuple[subprocess.CompletedProcess, float, bool]:
    """Run `<script> start`; returns its process, wall time and whether the service was already up."""
    probe = "status" if name == "local_slurm.sh" else "url"
    was_up = _script(name, probe, timeout=60).returncode == 0
    t0 = time.perf_counter()
    proc = _script(name, "start")
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        pytest.skip(
            f"scripts/{name} start could not start the service (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-800:]}"
        )
    return proc, elapsed, was_up


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Service]:
    """Single-node SLURM (partition `debug`, sacct through slurmdbd); sets SLURM_CONF for clients."""
    _, elapsed, was_up = _start("local_slurm.sh")
    conf = _script("local_slurm.sh", "env").stdout.strip().removeprefix("export SLURM_CONF=")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = (
        conf  # submitit's sbatch / sacct / scancel calls, and harness subprocesses
    )
    try:
        yield Service(conf, elapsed)
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        if not was_up:
            _script("local_slurm.sh", "stop", timeout=120)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[Service]:
    """SQLAlchemy URL of a throwaway PostgreSQL database on 127.0.0.1."""
    proc, elapsed, was_up = _start("local_postgres.sh")
    try:
        yield Service(proc.stdout.strip().splitlines()[-1], elapsed)
    finally:
        if not was_up:
            _script("local_postgres.sh", "stop", timeout=120)
