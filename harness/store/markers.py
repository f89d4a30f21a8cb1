"""Done markers: a stage's `done.json` records the sha256 of the outputs it vouches for
(`*.safetensors` and `*.json`, checkpoints aside); a marker that is unreadable or whose files no
longer match means "not done", and only the damaged outputs are removed before recomputing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
from pathlib import Path
from typing import Any

from harness.store.files import read_json_or_none, warn, warn_damaged
from harness.store.layout import stage_dir
from ursa.io import atomic_write_json

DONE = "done.json"

_SKIP_DIRS = {"checkpoint", "checkpoint.old"}  # training state, not an output a marker vouches for

_HASHES: dict[tuple, str] = {}


def _sha256(path: Path) -> str | None:
    """sha256 of a file (None if absent), cached per (path, inode, size, mtime)."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def stage_outputs(directory: Path) -> list[Path]:
    """The files a stage's done marker vouches for: its `*.safetensors` and `*.json` (the marker,
    hidden files and the training checkpoints aside), sorted."""
    out = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in files:
            if (
                not name.startswith(".")
                and name != DONE
                and name.endswith((".safetensors", ".json"))
            ):
                out.append(Path(root) / name)
    return sorted(out)


def stage_done(rdir: Path, stage: str) -> bool:
    """Whether the stage finished: its marker is readable and every file it vouches for matches
    its checksum (a marker written before checksums were recorded vouches for none)."""
    directory = stage_dir(rdir, stage)
    marker = directory / DONE
    if not marker.is_file():
        return False
    info = read_json_or_none(marker, "the stage is recomputed")
    if not isinstance(info, dict):
        return False
    for rel, digest in (info.get("sha256") or {}).items():
        if _sha256(directory / rel) != digest:
            warn_damaged(
                directory / rel,
                None,
                "the stage is recomputed",
                what="damaged or missing (its sha256 differs from the one in done.json)",
            )
            return False
    return True


def damaged_stages(rdir: Path, reference: bool) -> list[str]:
    """The stages of a finished run that no longer check out (done marker missing or unreadable,
    an output's sha256 differs, a stage link broken): the ones `run` recomputes, `report` flags.
    A run none of whose stages has a done marker (a result imported or written alone) has none to
    check."""
    stages = ("reference",) if reference else ("train", "sample", "score")
    if not any((stage_dir(rdir, s) / DONE).exists() for s in stages):
        return []
    return [s for s in stages if not stage_done(rdir, s)]


def mark_stage_done(rdir: Path, stage: str, info: dict[str, Any] | None = None) -> None:
    """Write the stage's done.json with the sha256 of every output it vouches for (stage_outputs)."""
    directory = stage_dir(rdir, stage)
    sums = {str(p.relative_to(directory)): _sha256(p) for p in stage_outputs(directory)}
    atomic_write_json(directory / DONE, {"finished": time.time(), **(info or {}), "sha256": sums})


def _safetensors_ok(path: Path) -> bool:
    """A safetensors file whose header parses and whose size matches the tensors it declares."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n > size - 8:
                return False
            header = json.loads(f.read(n))
        end = max(
            (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0
        )
        return size == 8 + n + end
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return False


def invalidate_stage(rdir: Path, stage: str) -> list[Path]:
    """Before recomputing a stage that is not done (call under its lock): remove its outputs that
    are damaged, so only they are recomputed, and the marker. With a readable marker the damaged
    files are those whose checksum no longer matches; without one, safetensors files that are
    truncated and JSON files that do not parse. A damaged learning-curve snapshot can only be
    remade by training again, so it takes the training checkpoints with it. Returns what it removed."""
    directory = stage_dir(rdir, stage)
    marker = directory / DONE
    info = read_json_or_none(marker, "the stage is recomputed") if marker.is_file() else None
    sums = info.get("sha256") if isinstance(info, dict) else None
    removed = []
    for path in stage_outputs(directory) if directory.is_dir() else []:
        rel = str(path.relative_to(directory))
        if sums is not None and rel in sums:
            bad = _sha256(path) != sums[rel]
        elif path.suffix == ".safetensors":
            bad = not _safetensors_ok(path)
        else:
            bad = read_json_or_none(path, "recomputed") is None
        if bad:
            path.unlink(missing_ok=True)
            removed.append(path)
    if stage == "train" and any("snapshots" in p.relative_to(directory).parts for p in removed):
        for name in ("checkpoint", "checkpoint.old", "model"):
            shutil.rmtree(directory / name, ignore_errors=True)
            removed.append(directory / name)
    if removed:
        warn(
            f"{directory}: removed {len(removed)} damaged output(s) ({', '.join(p.name for p in removed[:4])}); "
            f"recomputing them"
        )
    if marker.exists() or marker.is_symlink():
        marker.unlink(missing_ok=True)
    return removed
