"""Sweeping the temp files that killed writers left behind (ursa.io names and tags them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.store.files import warn
from ursa.io import is_temp_name, stale_temp, untagged_temp


def sweep_temps(directory: Path, *, locked: bool, recursive: bool = True) -> list[Path]:
    """Remove the temp files and directories under `directory` (not following links; only its own
    entries unless `recursive`) that no live process owns (ursa.io.stale_temp); with `locked` (the
    caller holds the directory's run or stage lock) also untagged ones left by older code. Returns
    what it removed."""
    removed = []
    for root, dirs, files in os.walk(directory):
        if not recursive and Path(root) != Path(directory):
            break
        for name in [*files, *dirs]:
            path = Path(root) / name
            if is_temp_name(name) and (stale_temp(path) or (locked and untagged_temp(path))):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        dirs[:] = [d for d in dirs if not is_temp_name(d)]
    if removed:
        warn(
            f"{directory}: removed {len(removed)} stale temp file(s) left by killed processes "
            f"({', '.join(p.name for p in removed[:3])}{', ...' if len(removed) > 3 else ''})"
        )
    return removed
