"""Run identity: sha256 over the resolved config, the code version and the data fingerprint.

A cache keyed on less serves one model's numbers for another, so everything that determines a
run's outputs goes in: the canonical JSON of the resolved config (key order irrelevant, with
settings that do not apply to the chosen path dropped), the package version, git commit and
dirty flag, and the data fingerprint (world config + tokenizer fingerprint).
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from harness.expand import RunSpec

REPO_ROOT = Path(__file__).resolve().parent.parent


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats as repr (1.0 and 1 differ by type)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def sha256_of(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


@functools.cache
def code_version() -> dict[str, Any]:
    """{"package": version, "commit": git HEAD or "unknown", "dirty": bool} (cached per process)."""
    try:
        version = metadata.version("ursa-bench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit, dirty = "unknown", True

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # untracked files under runs/ or reports/ do not make the code dirty; tracked edits do
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "ursa", "benchmarks", "harness"))
    except (OSError, subprocess.SubprocessError):
        pass
    return {"package": version, "commit": commit, "dirty": dirty}


def identity_config(run: RunSpec) -> dict[str, Any]:
    """The resolved config as it enters the hash; metric-path knobs vanish for other paths."""
    cfg = run.config.model_dump(mode="json")
    if cfg["path"]["kind"] != "metric":
        for key in ("c", "alpha", "calibrate"):
            cfg["path"].pop(key)
    return cfg


def data_config(run: RunSpec) -> dict[str, Any]:
    """The part of the config that determines the data and the tokenizer."""
    cfg = run.config.model_dump(mode="json")
    return {"benchmark": cfg["benchmark"], "tokenizer": cfg["tokenizer"]}


def run_id(run: RunSpec, data_fingerprint: str, code: dict[str, Any] | None = None) -> str:
    """First 16 hex digits of sha256(config, code version, data fingerprint)."""
    payload = {"config": identity_config(run), "code": code or code_version(), "data": data_fingerprint}
    return sha256_of(payload)[:16]


def assign_ids(runs: list[RunSpec], fingerprint: Callable[[dict[str, Any]], str]) -> list[RunSpec]:
    """Set run.run_id for every run; `fingerprint(data_config)` is called once per distinct data config."""
    cache: dict[str, str] = {}
    for run in runs:
        key = canonical_json(data_config(run))
        if key not in cache:
            cache[key] = fingerprint(data_config(run))
        run.run_id = run_id(run, cache[key])
    return runs
