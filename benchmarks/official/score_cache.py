"""Scores of the official scorers, cached by what determines them, so a rerun never rescores.

A cache entry is keyed by the samples (a hash of their bytes and prompts), the scorer and its
version and options, and the fingerprints of the environment and weights it ran with; change any
of them and the key changes. Entries and exports are computed under a lock (two runs sharing
samples score once) and `scores.json` / `export.json` are written last, atomically, so a killed
scorer leaves nothing that looks complete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.official.export import MANIFEST
from benchmarks.official.resources import Resource
from harness.identity import sha256_of
from harness.store import stage_lock
from ursa.io import atomic_write_json

Scores = tuple[dict[str, float], dict[str, list[float]]]  # (metrics, per-clip values)


def samples_digest(videos: torch.Tensor, captions: list[str]) -> str:
    """Hash of uint8 videos (N, F, H, W, 3) (shape and bytes) and their prompts' captions."""
    h = hashlib.sha256(json.dumps([list(videos.shape), str(videos.dtype), captions]).encode())
    h.update(videos.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def files_fingerprint(resources: list[Resource]) -> list[list[Any]]:
    """(path, size, mtime) of each file a scorer reads: weights are GBs, hashing them every run is not
    affordable, and a replaced file changes its size or mtime."""
    out = []
    for r in resources:
        stat = r.path.stat() if r.path.exists() else None
        out.append(
            [
                str(r.path),
                stat.st_size if stat and not r.is_dir else None,
                stat.st_mtime_ns if stat and not r.is_dir else None,
            ]
        )
    return out


def cached_scores(root: Path, key: dict[str, Any], compute: Callable[[Path], Scores]) -> Scores:
    """The scores stored under `key` in `root`, else `compute(work_dir)` stored there first."""
    folder = root / sha256_of(key)[:24]
    result = folder / "scores.json"
    if not result.is_file():
        with stage_lock(folder):
            if not result.is_file():
                metrics, clips = compute(folder / "work")
                atomic_write_json(result, {"key": key, "metrics": metrics, "clips": clips})
    data = json.loads(result.read_text())
    return data["metrics"], data["clips"]


def cached_export(folder: Path, write: Callable[[Path], Path]) -> Path:
    """`write(folder)` once: an export whose manifest exists is complete and reused (the folder's
    name carries the samples' hash)."""
    if not (folder / MANIFEST).is_file():
        with stage_lock(folder):
            if not (folder / MANIFEST).is_file():
                write(folder)
    return folder
