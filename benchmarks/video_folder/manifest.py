"""The caption manifest of a video folder: reading it, and the checks that need no decoding.

A manifest is CSV (header row with `path` and `caption`, optional `split`) or JSONL (one object
per line with the same keys). Paths are relative to the folder (or absolute). Each row becomes an
`Entry`; a row that cannot be one (no caption, a file that is missing, empty or of a type no
reader knows, a duplicate) becomes a skip record {"key", "reason"} instead, as does every media
file in the folder that no row names. Only a malformed manifest as a whole (unreadable, no
`path` / `caption` column, not JSON) is an error: one paragraph naming the file and the line.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks.video_folder.decode import MEDIA_EXTS

SPLITS = ("train", "eval")
_PROBE = 4096  # bytes hashed from each end of a file: catches rewrites that keep size and mtime


class ManifestError(ValueError):
    """The manifest as a whole cannot be read; the message names the file, line and what was expected."""


@dataclass(frozen=True)
class Entry:
    """One usable manifest row: the file (absolute), its key (the path as the manifest wrote it)."""

    key: str
    path: Path
    caption: str
    split: str  # "train" | "eval" | "" (none given)


def _rows(manifest: Path) -> list[tuple[int, dict]]:
    """(line number, raw row) of a CSV or JSONL manifest."""
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(
            f"{manifest}: expected a readable UTF-8 caption manifest, got {type(exc).__name__}: "
            f"{exc}"
        ) from None
    if manifest.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(
                    f"{manifest}:{n}: expected one JSON object per line, got invalid JSON "
                    f"({exc.msg}): {line[:80]!r}"
                ) from None
            if not isinstance(row, dict):
                raise ManifestError(
                    f"{manifest}:{n}: expected a JSON object with 'path' and 'caption', "
                    f"got {type(row).__name__}"
                )
            rows.append((n, row))
        return rows
    if manifest.suffix.lower() != ".csv":
        raise ManifestError(
            f"{manifest}: expected a .csv or .jsonl caption manifest, got {manifest.suffix!r}"
        )
    reader = csv.DictReader(text.splitlines())
    missing = [k for k in ("path", "caption") if k not in (reader.fieldnames or [])]
    if missing:
        raise ManifestError(
            f"{manifest}:1: expected a header row with columns path, caption (and optionally "
            f"split), got {reader.fieldnames!r} (missing {', '.join(missing)})"
        )
    return [(n + 2, row) for n, row in enumerate(reader)]


def read_manifest(root: Path, manifest: Path) -> tuple[list[Entry], list[dict[str, str]]]:
    """(usable entries in manifest order, skip records) of the folder `root`."""
    entries: list[Entry] = []
    skipped: list[dict[str, str]] = []
    seen: set[Path] = set()  # files of usable rows
    named: set[Path] = set()  # files any row names (a skipped row already reported them)
    for line, row in _rows(manifest):
        key = row.get("path")
        where = f"{manifest.name}:{line}"
        if not isinstance(key, str) or not key.strip():
            skipped.append({"key": f"<{where}>", "reason": f"{where}: no path"})
            continue
        caption, split = row.get("caption"), (row.get("split") or "").strip().lower()
        path = (root / key).resolve()
        named.add(path)
        reason = None
        if not isinstance(caption, str) or not caption.strip():
            reason = "no caption in the manifest"
        elif split and split not in SPLITS:
            reason = f"split {split!r} is not one of {', '.join(SPLITS)}"
        elif path in seen:
            reason = "listed twice in the manifest (the first row is used)"
        elif not path.is_file():
            reason = "caption of a missing file"
        elif path.suffix.lower() not in MEDIA_EXTS:
            reason = (
                f"unsupported file type {path.suffix!r} (expected one of {', '.join(MEDIA_EXTS)})"
            )
        elif path.stat().st_size == 0:
            reason = "empty file (0 bytes)"
        if reason:
            skipped.append({"key": key, "reason": f"{where}: {reason}"})
            continue
        seen.add(path)
        entries.append(Entry(key, path, caption.strip(), split))
    for path in sorted(
        p for p in root.rglob("*") if p.suffix.lower() in MEDIA_EXTS and p.is_file()
    ):
        if path.resolve() not in named and not any(
            part.startswith(".") for part in path.relative_to(root).parts
        ):
            skipped.append(
                {
                    "key": str(path.relative_to(root)),
                    "reason": "file without a caption in the manifest",
                }
            )
    return entries, skipped


def file_signature(path: Path) -> list:
    """[size, mtime_ns, sha256 of the first and last 4 KiB]: cheap, and changes when the file does."""
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_PROBE))
        if st.st_size > 2 * _PROBE:
            f.seek(-_PROBE, 2)
            h.update(f.read(_PROBE))
    return [st.st_size, st.st_mtime_ns, h.hexdigest()[:16]]
