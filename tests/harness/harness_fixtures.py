"""Shared helpers for the harness run tests: a seconds-sized spec and a pre-fitted tokenizer cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

WORLD = {"frames": 4, "height": 16, "width": 16, "max_objects": 1, "speed": 1.0}


def tiny_spec(
    path: Path, name: str = "tiny", steps: int = 4, checkpoint_every: int = 2, **top
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
        "executor": {"kind": "inprocess", "threads": 1},
        **top,
    }
    path.write_text(yaml.safe_dump(data))
    return path


_CACHE: list[Path] = []


def seeded_runs_root(tmp_path: Path, tmp_path_factory) -> Path:
    """A runs root whose _cache already holds the fitted tokenizer (fitted once per session)."""
    if not _CACHE:
        from benchmarks.shapes.tokenizer import load_or_fit_tokenizer
        from benchmarks.shapes.world import WorldConfig

        cache = tmp_path_factory.mktemp("tokcache") / "_cache"
        load_or_fit_tokenizer(cache / "shapes", WorldConfig(**WORLD), codebook_size=65, seed=0)
        _CACHE.append(cache)
    root = tmp_path / "runs"
    shutil.copytree(_CACHE[0], root / "_cache")
    return root
