"""Where evaluator environments live (built by `python -m harness env NAME`, see harness/env.py).

An env is usable only once its marker file exists: the builder writes it last, after an import
check, so a half-built env is never mistaken for a complete one.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.official.resources import Resource, require

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER = "ursa-env.json"


def default_env_path(name: str) -> Path:
    """$URSA_<NAME>_ENV if set, else <repo>/.cache/envs/<name>."""
    override = os.environ.get(f"URSA_{name.upper()}_ENV")
    return Path(override) if override else REPO_ROOT / ".cache" / "envs" / name


def env_python(path: Path | str) -> Path:
    return Path(path) / "bin" / "python"


def is_built(path: Path | str) -> bool:
    return (Path(path) / MARKER).is_file() and env_python(path).is_file()


def require_env(name: str, path: Path | str | None = None) -> Path:
    """The built env's path, else MissingResourceError saying how to build it."""
    path = Path(path) if path else default_env_path(name)
    require(f"{name} environment", [Resource(
        path / MARKER, f"python -m harness env {name}  (or set $URSA_{name.upper()}_ENV)")])
    return path


def site_packages(path: Path | str) -> Path:
    found = sorted((Path(path) / "lib").glob("python3*/site-packages"))
    if not found:
        raise ValueError(f"env {path}: expected lib/python3*/site-packages, found none")
    return found[0]
