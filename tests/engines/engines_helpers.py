"""Helpers for the engine tests: seconds-sized specs, the harness CLI, SLURM job lookups, result tables."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
ACTIVE = ("PENDING", "RUNNING", "COMPLETING", "REQUEUED", "CONFIGURING", "RESIZING", "SUSPENDED")
WORLD = {"frames": 4, "height": 16, "width": 16, "max_objects": 1, "speed": 1.0}


def tiny_spec(
    path: Path, name: str, *, steps: int = 4, checkpoint_every: int = 2, **top: Any
) -> Path:
    """Write a spec whose runs take seconds (16x16x4 clips, K=65, tiny model); returns its path."""
    data = {
        "name": name,
        "base": {
            "benchmark": {
                "name": "shapes",
                "world": WORLD,
                "train_size": 16,
                "eval_size": 4,
                "task_size": 2,
            },
            "tokenizer": {"codebook_size": 65},
            "model": {"preset": "tiny"},
            "train": {
                "steps": steps,
                "batch_size": 4,
                "checkpoint_every": checkpoint_every,
                "warmup_steps": 1,
            },
            "sample": {"steps": 2, "batch_size": 4},
            "score": {"which": ["alignment", "quality"]},
        },
        "executor": {
            "kind": "slurm",
            "threads": 1,
            "timeout_min": 10,
            "slurm": {"partition": "debug", "cpus_per_task": 1, "mem_gb": 2},
        },
        **top,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def harness(
    *args: str | Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m harness ...` from the repo root (the project venv's python), output captured;
    `env` adds variables to the inherited environment."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def harness_popen(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m harness ...` in the background, for tests that act on SLURM while it runs;
    `env` adds variables to the inherited environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """Wait for a harness_popen process (killed if it outlives `timeout`); (exit code, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n[killed by the test after {timeout} s]"
    return proc.returncode, out, err


def describe(proc: subprocess.CompletedProcess | tuple[int, str, str]) -> str:
    """Exit code and output tails, for assertion messages."""
    rc, out, err = (
        (proc.returncode, proc.stdout, proc.stderr) if hasattr(proc, "returncode") else proc
    )
    return f"exit {rc}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"


def submitit_folder(runs_root: Path, spec: str, profile: str) -> Path:
    """Where the harness keeps submitit's pickles and job logs for a spec+profile."""
    return runs_root / spec / profile / "_submitit"


def submitted_runs(folder: Path) -> dict[str, Path]:
    """SLURM job id (e.g. "12_3") -> run directory of the RunTask submitit pickled for it."""
    jobs = {}
    for pkl in folder.glob("*_submitted.pkl"):
        with pkl.open("rb") as fh:
            delayed = pickle.load(fh)
        jobs[pkl.name.removesuffix("_submitted.pkl")] = Path(delayed.function.run_dir)
    return jobs


def wait_for_jobs(folder: Path, count: int, timeout: float = 120) -> dict[str, Path]:
    """Poll until `count` jobs have been submitted into `folder`; returns submitted_runs(folder)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir():
            try:
                jobs = submitted_runs(folder)
            except (EOFError, pickle.UnpicklingError):  # a pickle being written
                jobs = {}
            if len(jobs) >= count:
                return jobs
        time.sleep(0.5)
    raise AssertionError(f"expected {count} jobs submitted into {folder} within {timeout} s")


def squeue_state(job_id: str) -> str:
    """The job's state in squeue ("PENDING", "RUNNING", ...), "" once it has left the queue."""
    return subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=60
    ).stdout.strip()


def wait_until_running(job_id: str, timeout: float = 120) -> None:
    """Poll squeue until the job (e.g. an array task "12_0") is RUNNING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if squeue_state(job_id) == "RUNNING":
            return
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not start running within {timeout} s")


def sacct_states(job_ids: list[str], duplicates: bool = False) -> dict[str, list[str]]:
    """Job id -> accounting states from `sacct` (every requeued attempt with duplicates=True)."""
    cmd = ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)] + (
        ["-D"] if duplicates else []
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    states: dict[str, list[str]] = {}
    for line in out.splitlines():
        jid, state = line.split("|")
        states.setdefault(jid, []).append(state.split()[0])
    return states


def final_states(
    job_ids: list[str], duplicates: bool = False, timeout: float = 60
) -> dict[str, list[str]]:
    """sacct_states once every job's last attempt has ended (accounting lags the job's exit by ~1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        states = sacct_states(job_ids, duplicates)
        ended = all(jid in states and states[jid][-1] not in ACTIVE for jid in job_ids)
        if ended or time.monotonic() > deadline:
            return states
        time.sleep(1)


def results_table(runs_root: Path, spec: str, profile: str) -> pd.DataFrame:
    """load_results sorted by (arm, seed), with the columns that must not depend on the executor."""
    from harness.store import load_results

    df = load_results(runs_root, spec, profile).sort_values(["arm", "seed"]).reset_index(drop=True)
    keep = ["run_id", "arm", "seed", "state"] + sorted(
        c for c in df.columns if c.startswith(("metric.", "param."))
    )
    return df[keep]


def losses(runs_root: Path, spec: str, profile: str, run_id: str) -> pd.DataFrame:
    return pd.read_csv(runs_root / spec / profile / run_id / "stages" / "train" / "losses.csv")
