"""Resetting a run: its directory and the shared stage outputs no other run uses go, so the next
`run` recomputes it."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.store.index import remove_from_index
from harness.store.layout import run_dir, stage_dir
from harness.store.locks import stage_busy
from harness.store.ownership import acquire_run, owner_of


def reset_run(runs_root: str | Path, spec: str, profile: str, run_id: str) -> list[Path]:
    """Delete one run's directory and the shared stage outputs no other run uses, so the next `run`
    recomputes it; ValueError (nothing deleted) when a live process owns the run or computes one of
    those stages. Returns the directories deleted."""
    runs_root = Path(runs_root)
    rdir = run_dir(runs_root, spec, profile, run_id)
    if not rdir.is_dir():
        raise ValueError(
            f"{rdir}: expected the directory of a run of {spec!r} (profile {profile}), got nothing there"
        )
    hold = acquire_run(rdir, wait=False)
    if hold is None:
        raise ValueError(
            f"{rdir}: owned by {owner_of(rdir) or 'another process'}, which is computing it; "
            f"expected a run no live process owns (wait for it, or stop that process first)"
        )
    with hold:
        doomed = []
        for stage in ("train", "sample"):
            link = stage_dir(rdir, stage)
            if not link.is_symlink():
                continue
            target = link.resolve()
            users = [
                p
                for p in runs_root.glob(f"*/*/*/stages/{stage}")
                if p.is_symlink() and p.resolve() == target and p.parents[1] != rdir
            ]
            if (
                users
                or not target.is_dir()
                or runs_root.resolve() / "_stages" not in target.parents
            ):
                continue
            if stage_busy(target):
                raise ValueError(
                    f"{target}: a process is computing this {stage} stage now; expected it idle "
                    f"(wait for it, then reset again)"
                )
            doomed.append(target)
        for target in doomed:
            shutil.rmtree(target)
        shutil.rmtree(rdir)
    remove_from_index(runs_root, spec, profile, run_id)
    return [*doomed, rdir]
