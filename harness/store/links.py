"""Shared stages: a run's `stages/train` and `stages/sample` are relative symlinks to the one
copy under `<runs_root>/_stages/`, so every reader sees one run directory."""

from __future__ import annotations

import os
from pathlib import Path

from harness.store.layout import stage_dir
from ursa.io import temp_tag


def link_stage(rdir: Path, stage: str, target: Path) -> None:
    """Make rdir/stages/<stage> a relative symlink to the shared stage directory `target`."""
    target.mkdir(parents=True, exist_ok=True)
    link = stage_dir(rdir, stage)
    link.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(target, link.parent)
    if link.is_symlink() and os.readlink(link) == rel:
        return
    tmp = link.parent / f".{stage}.link.{temp_tag()}.tmp"  # unique: two processes may link at once
    tmp.symlink_to(rel, target_is_directory=True)
    try:
        os.replace(tmp, link)  # atomic: a reader sees the old link or the new one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
