"""Manifests: `<runs_root>/<spec>/<profile>/manifest.json` lists the run ids of the latest
expansion of spec+profile and the spec file that owns that name under the runs root."""

from __future__ import annotations

import os
from pathlib import Path

from harness.store.files import read_json_or_none, warn_damaged
from harness.store.layout import profile_dir
from ursa.io import atomic_write_json


def read_manifest(path: Path) -> dict | None:
    data = read_json_or_none(
        path, "it is rewritten from the plan (or the run directories are read)"
    )
    if data is not None and not (isinstance(data, dict) and isinstance(data.get("run_ids"), list)):
        warn_damaged(
            path,
            ValueError("expected an object with a run_ids list"),
            "it is rewritten from the plan (or the run directories are read)",
        )
        return None
    return data


def check_owner(runs_root: str | Path, spec: str, profile: str, source: str) -> None:
    """ValueError when another spec file with the same `name:` already owns spec+profile here.

    An owner file that no longer exists (the checkout moved, a worktree was deleted) cannot
    collide: its runs pass to `source`, with a note, when the manifest is next written."""
    path = profile_dir(runs_root, spec, profile) / "manifest.json"
    manifest = read_manifest(path)
    owner = manifest.get("source") if manifest else None
    if owner is None or owner == spec_source(source):
        return
    if not owner.startswith("<") and not os.path.exists(owner):
        warn_damaged(
            path,
            None,
            f"its runs now belong to {spec_source(source)}",
            what=f"the spec file that owned name {spec!r}, {owner}, no longer exists",
        )
        return
    raise ValueError(
        f"{source}: name: {spec!r} is already the name of spec file {owner!r} under runs root "
        f"{runs_root} (profile {profile}); expected a name no other spec uses there. Rename one "
        f"of them, or use another --runs-root."
    )


def spec_source(source: str) -> str:
    """The identity of a spec file in a manifest: its absolute path (a spec made in memory keeps its label)."""
    return source if source.startswith("<") else os.path.abspath(source)


def write_manifest(
    runs_root: str | Path, spec: str, profile: str, run_ids: list[str], source: str
) -> None:
    """Record which runs make up the latest expansion of spec+profile (older code versions drop out)
    and which spec file they belong to."""
    check_owner(runs_root, spec, profile, source)
    path = profile_dir(runs_root, spec, profile) / "manifest.json"
    old = (read_manifest(path) or {}).get("run_ids", [])
    atomic_write_json(
        path,
        {
            "run_ids": sorted(set(run_ids)),
            "previous": sorted(set(old) - set(run_ids)),
            "source": spec_source(source),
        },
    )


def add_to_manifest(
    runs_root: str | Path, spec: str, profile: str, run_ids: list[str], source: str
) -> None:
    path = profile_dir(runs_root, spec, profile) / "manifest.json"
    current = (read_manifest(path) or {}).get("run_ids", [])
    write_manifest(runs_root, spec, profile, current + list(run_ids), source)
