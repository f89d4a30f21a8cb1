"""Run identity: per stage, a hash of exactly the configs and code versions of what it runs.

A cache keyed on less serves one model's numbers for another, so everything that determines a
stage's outputs goes in: its config sections as canonical JSON (key order irrelevant; a path
section holds only its kind's keys), the code versions of the components it runs
(harness.codehash: their modules and in-project imports, docstrings, comments and error messages
aside) and, for training, the data fingerprint (benchmark + tokenizer fingerprints) and the
weights it starts from. Nothing else: a docs or test edit keeps every id, a scorer's code change
recomputes only the score stage, a path plug-in's change what it trains and everything after.

Identity is per stage: the train id hashes what affects training, the sample id adds the
sampling settings and tasks, the score id (the run id) adds the scorers, so arms that share a
stage share its outputs instead of recomputing them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.codehash import module_version, version_of

if TYPE_CHECKING:
    from harness.records import RunSpec
    from harness.spec import RunConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats as repr (1.0 and 1 differ by type)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def sha256_of(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


@functools.cache
def code_version() -> dict[str, Any]:
    """{"package", "commit" (HEAD), "dirty"}: recorded beside results, not hashed (cached per process)."""
    try:
        version = metadata.version("ursa-bench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit, dirty = "unknown", True

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # tracked edits make the code dirty; untracked files and the reports a run itself
        # rewrites (reports/, runs/) do not
        dirty = bool(
            git(
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)reports",
                ":(exclude)runs",
            )
        )
    except (OSError, subprocess.SubprocessError):
        pass
    return {"package": version, "commit": commit, "dirty": dirty}


DATA_SECTIONS = ("benchmark", "tokenizer", "text_tokenizer")
# What each stage adds to the identity of the stage before it (train hashes the data as well).
STAGE_SECTIONS = {
    "train": (*DATA_SECTIONS, "model", "path", "train"),
    "sample": ("sample",),
    "score": ("score",),
}


def data_config(config: RunConfig) -> dict[str, Any]:
    """The sections that determine the data and the tokenizers."""
    cfg = config.model_dump(mode="json")
    return {k: cfg[k] for k in DATA_SECTIONS}


def directory_fingerprint(path: str | Path) -> str:
    """Content fingerprint of a saved model directory: config.json text + every file's name and size."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    config = (root / "config.json").read_text() if (root / "config.json").is_file() else ""
    return sha256_of(
        {"config": config, "files": [(str(p.relative_to(root)), p.stat().st_size) for p in files]}
    )[:16]


def stage_code(config: RunConfig) -> dict[str, dict[str, Any]]:
    """{"data", "train", "sample", "score": {component: code version}}: the components that make the
    data and those each stage runs. The stage runner (harness.stages, with the ursa model, trainer
    and sampler it imports) is part of training."""
    from harness import plugins

    registries = (plugins.BENCHMARKS, plugins.VISUAL_TOKENIZERS, plugins.TEXT_TOKENIZERS)
    return {
        "data": {
            key: version_of(reg.get(getattr(config, key).name))
            for key, reg in zip(DATA_SECTIONS, registries)
        },
        "train": {
            "stages": module_version("harness.stages"),
            "path": version_of(type(config.path)),
        },
        "sample": {task: version_of(plugins.TASKS.get(task)) for task in config.sample.tasks},
        "score": {name: version_of(plugins.SCORERS.get(name)) for name in config.score.which},
    }


def stage_ids(
    config: RunConfig, data_fingerprint: str, code: dict[str, dict[str, Any]] | None = None
) -> dict[str, str]:
    """{"train", "sample", "score"}: 16-hex ids, each hashing its own sections and code versions
    (`code`: stage_code's) plus the id before it.

    Arms that differ only in sampling settings share a train id (one trained model); arms that
    differ only in scorers share a sample id. The score id is the run id."""
    code = code or stage_code(config)
    cfg = config.model_dump(mode="json")
    payload: dict[str, Any] = {
        "code": code["train"],
        "data_code": code["data"],
        "data": data_fingerprint,
        **{k: cfg[k] for k in STAGE_SECTIONS["train"]},
    }
    if config.model.init_from:  # the weights it starts from, not just their path
        payload["init_from"] = directory_fingerprint(config.model.init_from)
    ids = {"train": sha256_of(payload)[:16]}
    ids["sample"] = sha256_of(
        {"train": ids["train"], "sample": cfg["sample"], "code": code["sample"]}
    )[:16]
    ids["score"] = sha256_of(
        {"sample": ids["sample"], "score": cfg["score"], "code": code["score"]}
    )[:16]
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
