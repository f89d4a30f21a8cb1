"""Reports per profile and run-store ownership: a smoke run touches no tracked file, commands
with no runs exit non-zero naming the runs root and profile, and two spec files with one name
never share a manifest (unless one of them no longer exists)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness_fixtures import seeded_runs_root, tiny_spec

from harness.runner import run_spec
from harness.specfile import load_spec

REPO = Path(__file__).resolve().parents[2]


def _git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


def test_smoke_run_of_the_main_job_leaves_every_tracked_file_unchanged(tmp_path: Path) -> None:
    before = _git_status()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "ablations/path_shape.yaml",
            "--profile",
            "smoke",
            "--runs-root",
            str(tmp_path / "runs"),
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "reports/path_shape/smoke/report.md" in out.stdout
    assert (
        _git_status() == before
    )  # reports/<spec>/smoke/ is ignored; reports/<spec>/default/ untouched


@pytest.mark.parametrize(
    "command",
    [["report"], ["status"], ["check", "--baseline", "reports/baselines/path_shape.json"]],
)
def test_commands_without_runs_exit_nonzero_naming_root_and_profile(
    tmp_path: Path, command: list[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            command[0],
            "ablations/path_shape.yaml",
            "--profile",
            "smoke",
            "--runs-root",
            str(empty),
            *command[1:],
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert (
        str(empty) in out.stderr and "profile smoke" in out.stderr and "Traceback" not in out.stderr
    )


def test_two_spec_files_with_one_name_never_share_a_manifest(
    tmp_path: Path, tmp_path_factory
) -> None:
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = load_spec(tiny_spec(tmp_path / "a" / "spec.yaml", name="same"))
    second = load_spec(tiny_spec(tmp_path / "b" / "spec.yaml", name="same", steps=3))
    assert run_spec(first, "default", root, progress=False).failed == []
    manifest = (root / "same" / "default" / "manifest.json").read_text()
    with pytest.raises(ValueError, match="already the name of spec file"):
        run_spec(second, "default", root, progress=False)
    assert (root / "same" / "default" / "manifest.json").read_text() == manifest
    assert (
        run_spec(first, "default", root, progress=False).computed == 0
    )  # the owner reruns as before


def test_a_spec_file_that_no_longer_exists_owns_nothing(
    tmp_path: Path, tmp_path_factory, capsys
) -> None:
    """The checkout moved (or a worktree was deleted): the same spec at its new path takes the runs over."""
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    before = load_spec(tiny_spec(tmp_path / "old" / "spec.yaml", name="moved"))
    assert run_spec(before, "default", root, progress=False).failed == []
    (tmp_path / "old" / "spec.yaml").rename(tmp_path / "new" / "spec.yaml")
    after = run_spec(load_spec(tmp_path / "new" / "spec.yaml"), "default", root, progress=False)
    assert after.failed == [] and after.computed == 0  # the same runs, found in the store
    assert "no longer exists" in capsys.readouterr().err
    manifest = json.loads((root / "moved" / "default" / "manifest.json").read_text())
    assert manifest["source"] == str((tmp_path / "new" / "spec.yaml").resolve())
