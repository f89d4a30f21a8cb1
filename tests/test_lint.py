"""The tree passes its own checks: `ruff check`, `ruff format --check` and mypy (pyproject.toml).

Each check runs as a subprocess of this interpreter (installed by the dev extra) from the
repository root, so a failure prints exactly what the tool says and the command that fixes it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (what runs, what a developer runs to fix what it finds); settings live in pyproject.toml.
CHECKS = {
    "ruff lint": (["ruff", "check", "."], "ruff check --fix . (then fix what remains by hand)"),
    "ruff format": (["ruff", "format", "--check", "."], "ruff format ."),
    "mypy": (["mypy"], "fix the types it names (its files are in [tool.mypy] of pyproject.toml)"),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_check_passes(name: str) -> None:
    args, fix = CHECKS[name]
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)
    if "No module named" in proc.stderr and proc.returncode == 1:
        pytest.fail(
            f"{name}: {args[0]} is not installed in {sys.executable}; install the dev "
            f"extra (pip install -e '.[dev]'), as README.md says."
        )
    assert proc.returncode == 0, (
        f"{name} failed (python -m {' '.join(args)}); to fix: {fix}\n{proc.stdout}{proc.stderr}"
    )
