"""Run identity: sha256 over the resolved config, the code version and the data fingerprint.

A cache keyed on less serves one model's numbers for another, so everything that determines a
run's outputs goes in: the canonical JSON of the resolved config (key order irrelevant; each path kind
has only its own keys, ursa.paths), the package version, git commit and
dirty flag of the code that produces results (CODE_DIRS: commits touching only tests, docs,
reports or dispatch keep ids), and the data fingerprint (benchmark + tokenizer fingerprints).

Identity is per stage: the train id hashes only what affects training, the sample id adds the
sampling settings, the score id (the run id) adds the scorers, so arms that share a stage share
its outputs instead of recomputing them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from harness.expand import RunSpec
    from harness.spec import RunConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
# The code that can change a run's outputs (model, the bundled benchmarks, tokenizers and pixel
# scorers, and the harness's stages, data and config resolution). Reports, checks, dispatch, the
# CLI and perf benchmarks are left out, so editing them does not recompute every run; the official
# scorers cache their scores by their own version (benchmarks/official/score_cache.py).
CODE_DIRS = ("ursa", "benchmarks/shapes", "benchmarks/video_folder", "benchmarks/pixel", "benchmarks/release",
             "harness/stages.py", "harness/data.py", "harness/tokenize.py", "harness/text.py", "harness/tasks.py",
             "harness/media.py", "harness/spec.py", "harness/expand.py", "harness/plugins.py")


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


DATA_SECTIONS = ("benchmark", "tokenizer", "text_tokenizer")
# What each stage adds to the identity of the stage before it (train hashes the data as well).
STAGE_SECTIONS = {"train": (*DATA_SECTIONS, "model", "path", "train"), "sample": ("sample",), "score": ("score",)}


def data_config(config: RunConfig) -> dict[str, Any]:
    """The sections that determine the data and the tokenizers."""
    cfg = config.model_dump(mode="json")
    return {k: cfg[k] for k in DATA_SECTIONS}


def directory_fingerprint(path: str | Path) -> str:
    """Content fingerprint of a saved model directory: config.json text + every file's name and size."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    config = (root / "config.json").read_text() if (root / "config.json").is_file() else ""
    return sha256_of({"config": config, "files": [(str(p.relative_to(root)), p.stat().st_size) for p in files]})[:16]


def stage_ids(config: RunConfig, data_fingerprint: str, code: dict[str, Any] | None = None) -> dict[str, str]:
    """{"train", "sample", "score"}: 16-hex ids, each hashing its own sections plus the id before it.

    Arms that differ only in sampling settings share a train id (one trained model); arms that
    differ only in scorers share a sample id. The score id is the run id."""
    code = {k: v for k, v in (code or code_version()).items() if k != "commit"}  # the code tree identifies it
    cfg = config.model_dump(mode="json")
    payload: dict[str, Any] = {"code": code, "data": data_fingerprint,
                               **{k: cfg[k] for k in STAGE_SECTIONS["train"]}}
    if config.model.init_from:  # the weights it starts from, not just their path
        payload["init_from"] = directory_fingerprint(config.model.init_from)
    ids = {"train": sha256_of(payload)[:16]}
    ids["sample"] = sha256_of({"train": ids["train"], "sample": cfg["sample"]})[:16]
    ids["score"] = sha256_of({"sample": ids["sample"], "score": cfg["score"]})[:16]
    return ids


def assign_ids(runs: list[RunSpec], fingerprint: Callable[[dict[str, Any]], str]) -> list[RunSpec]:
    """Set run.run_id and run.stage_ids for every run; `fingerprint(data_config)` is called once per
    distinct data config."""
    cache: dict[str, str] = {}
    for run in runs:
        key = canonical_json(data_config(run.config))
        if key not in cache:
            cache[key] = fingerprint(data_config(run.config))
        run.stage_ids = stage_ids(run.config, cache[key])
        run.run_id = run.stage_ids["score"]
    return runs
