"""Run identity: sha256 over the resolved config, the code version and the data fingerprint.

A cache keyed on less serves one model's numbers for another, so everything that determines a
run's outputs goes in: the canonical JSON of the resolved config (key order irrelevant, with
settings that do not apply to the chosen path dropped), the package version, git commit and
dirty flag of the code that produces results (CODE_DIRS: commits touching only tests, docs,
reports or dispatch keep ids), and the data fingerprint (world config + tokenizer fingerprint).
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
# The code that can change a run's outputs (model, benchmark, and the harness's stages and config
# resolution). Reports, checks, dispatch, the CLI, perf benchmarks and official-scorer adapters
# are left out, so editing them does not recompute every run.
CODE_DIRS = ("ursa", "benchmarks/shapes", "harness/stages.py", "harness/bench.py", "harness/media.py",
             "harness/spec.py", "harness/expand.py")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats as repr (1.0 and 1 differ by type)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def sha256_of(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


@functools.cache
def code_version() -> dict[str, Any]:
    """{"package", "commit" (HEAD, recorded), "tree" (hash of HEAD's code trees), "dirty"} (cached per process)."""
    try:
        version = metadata.version("ursa-bench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit, tree, dirty = "unknown", "unknown", True

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # content of the code that produces results: commits elsewhere (tests, reports, docs, CLI) keep ids
        tree = sha256_of(git("rev-parse", *(f"HEAD:{d}" for d in CODE_DIRS)).split())[:16]
        # untracked files under runs/ or reports/ do not make the code dirty; tracked edits do
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", *CODE_DIRS))
    except (OSError, subprocess.SubprocessError):
        pass
    return {"package": version, "commit": commit, "tree": tree, "dirty": dirty}


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
    code = {k: v for k, v in (code or code_version()).items() if k != "commit"}  # the code tree identifies it
    payload = {"config": identity_config(run), "code": code, "data": data_fingerprint}
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
