"""Where a run lives: `<runs_root>/<spec>/<profile>/<run_id>/`, its `stages/<stage>/`, and the
stages several runs share under `<runs_root>/_stages/<stage>/<stage_id>/`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def profile_dir(runs_root: str | Path, spec: str, profile: str) -> Path:
    return Path(runs_root) / spec / profile


def run_dir(runs_root: str | Path, spec: str, profile: str, run_id: str) -> Path:
    return profile_dir(runs_root, spec, profile) / run_id


def stage_dir(rdir: Path, stage: str) -> Path:
    return rdir / "stages" / stage


def shared_stage_dir(runs_root: str | Path, stage: str, stage_id: str) -> Path:
    return Path(runs_root) / "_stages" / stage / stage_id


def run_dirs(runs_root: Path) -> Iterator[Path]:
    """Every run directory under the runs root (<spec>/<profile>/<run_id>/, `_` folders aside)."""
    for spec in sorted(runs_root.iterdir()) if runs_root.is_dir() else []:
        if not spec.is_dir() or spec.name.startswith(("_", ".")):
            continue
        for prof in sorted(spec.iterdir()):
            if not prof.is_dir() or prof.name.startswith(("_", ".")):
                continue
            for rdir in sorted(prof.iterdir()):
                if rdir.is_dir() and not rdir.name.startswith(("_", ".")):
                    yield rdir
