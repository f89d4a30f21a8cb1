"""Separate Python environments for external evaluators: `python -m harness env NAME`.

An evaluator whose pins cannot live beside this project's (vbench 0.1.5 pins transformers 4.33.2
and numpy < 2) gets its own venv; its scorers talk to it only through a subprocess and JSON files.
A plug-in declares what its env needs (`EnvSpec`) in `ENVIRONMENTS` (the official scorers
register `vbench`, benchmarks/official/envs.py); the harness builds it.

Torch comes from this machine's disk, never from a download:
- `torch_from="link"` (default): the torch stack of the running interpreter (torch, torchvision,
  triton, nvidia-*/cuda-* wheels) is exposed to the new venv through a `.pth` file pointing at a
  folder of symlinks. No multi-GB copy, and torch/torchvision are a matching pair by construction.
- `torch_from="pip"`: `pip install torch==<this torch> torchvision==<this torchvision>`, which
  pip resolves from the local wheel folders configured on the machine.

An env counts as built only once `ursa-env.json` (MARKER) is written, last, after an import check.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.metadata as metadata
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.plugins import Registry
from ursa.io import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parent.parent
MARKER = "ursa-env.json"


@dataclass(frozen=True)
class EnvSpec:
    """What one evaluator environment needs.

    build: installed first and kept in the final install (openai-clip's setup.py imports
        pkg_resources, which setuptools >= 81 no longer ships; sdists build without isolation).
    requirements: the evaluator itself.
    check: Python code that must run in the finished env.
    """

    build: tuple[str, ...]
    requirements: tuple[str, ...]
    check: str


ENVIRONMENTS: Registry[EnvSpec] = Registry("evaluator environment", "env name")


def default_env_path(name: str) -> Path:
    """$URSA_<NAME>_ENV if set, else <repo>/.cache/envs/<name>."""
    override = os.environ.get(f"URSA_{name.upper()}_ENV")
    return Path(override) if override else REPO_ROOT / ".cache" / "envs" / name


def env_python(path: Path | str) -> Path:
    return Path(path) / "bin" / "python"


def is_built(path: Path | str) -> bool:
    return (Path(path) / MARKER).is_file() and env_python(path).is_file()


def site_packages(path: Path | str) -> Path:
    found = sorted((Path(path) / "lib").glob("python3*/site-packages"))
    if not found:
        raise ValueError(f"env {path}: expected lib/python3*/site-packages, found none")
    return found[0]


# Distributions shared from the running interpreter when torch_from="link".
_SHARED_NAMES = ("torch", "torchvision", "triton")
_SHARED_PREFIXES = ("nvidia-", "cuda-")


def _run(cmd: list[str], progress: bool) -> None:
    if progress:
        print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(
        cmd, stdout=None if progress else subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if proc.returncode != 0:
        tail = "" if progress else "\n" + (proc.stdout or "")[-4000:]
        raise RuntimeError(f"command failed (exit {proc.returncode}): {' '.join(cmd)}{tail}")


def _shared_torch_distributions() -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name in _SHARED_NAMES or name.startswith(_SHARED_PREFIXES):
            seen.setdefault(name, dist)
    if "torch" not in seen or "torchvision" not in seen:
        raise ValueError(
            "torch_from='link' needs torch and torchvision installed in the running "
            f"interpreter ({sys.executable}); got {sorted(seen)}; use torch_from='pip'"
        )
    return list(seen.values())


def _link_torch(path: Path) -> dict[str, str]:
    """Symlink the running interpreter's torch stack into <path>/shared-torch + a .pth file."""
    shared = path / "shared-torch"
    shared.mkdir(exist_ok=True)
    versions: dict[str, str] = {}
    for dist in _shared_torch_distributions():
        versions[dist.metadata["Name"]] = dist.version
        site = Path(str(dist.locate_file("")))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            target, link = site / top, shared / top
            if target.exists() and not link.exists() and not top.endswith(".pth"):
                link.symlink_to(target)
    (site_packages(path) / "ursa-shared-torch.pth").write_text(f"{shared}\n")
    return versions


def env_packages(path: Path | str) -> list[str]:
    """`name==version` of every distribution the env resolves (its site-packages and the linked
    torch stack), sorted: what a score cache keys on, read from the dist-info on disk each time, so
    a package installed into the env after it was built (dreamsim, a pin moved) changes it."""
    path = Path(path)
    shared = path / "shared-torch"
    where = [str(site_packages(path))] + ([str(shared)] if shared.is_dir() else [])
    found = {
        f"{(d.metadata['Name'] or '?').lower().replace('_', '-')}=={d.version}"
        for d in metadata.distributions(path=where)
    }
    return sorted(found)


def create_env(
    name: str,
    path: Path | str | None = None,
    *,
    torch_from: str = "link",
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Create (or reuse) the venv for evaluator `name`; returns its path.

    A reused env must carry the marker file; an unmarked folder (a failed earlier build) is
    rebuilt in place. Raises ValueError for an unknown name/torch_from, RuntimeError when a
    build step fails (with the failing command).
    """
    spec = ENVIRONMENTS.get(name)  # PluginError (a ValueError) naming the registered ones
    if torch_from not in ("link", "pip"):
        raise ValueError(f"torch_from: expected 'link' or 'pip', got {torch_from!r}")
    path = Path(path) if path else default_env_path(name)
    if is_built(path) and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:  # two first users build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built(path) and not force:
            return path
        return _build(name, spec, path, torch_from=torch_from, force=force, progress=progress)


def _build(
    name: str, spec: EnvSpec, path: Path, *, torch_from: str, force: bool, progress: bool
) -> Path:
    (path / MARKER).unlink(missing_ok=True)
    start = time.monotonic()
    _run([sys.executable, "-m", "venv", *(["--clear"] if force else []), str(path)], progress)
    pip = [str(env_python(path)), "-m", "pip", "install", "--disable-pip-version-check"]
    _run(pip + list(spec.build), progress)
    if torch_from == "link":
        torch_versions = _link_torch(path)
    else:
        torch_versions = {
            "torch": metadata.version("torch"),
            "torchvision": metadata.version("torchvision"),
        }
        _run(pip + [f"{k}=={v.split('+')[0]}" for k, v in torch_versions.items()], progress)
    # build pins repeated so torch's own `setuptools>=77` cannot lift setuptools past 80.
    _run(pip + ["--no-build-isolation", *spec.requirements, *spec.build], progress)
    _run([str(env_python(path)), "-c", spec.check], progress)
    record = {
        "name": name,
        "requirements": list(spec.requirements),
        "build": list(spec.build),
        "torch_from": torch_from,
        "torch": torch_versions,
        "python": sys.version.split()[0],
        "packages": env_packages(path),
        "build_seconds": round(time.monotonic() - start, 1),
    }
    atomic_write_json(path / MARKER, record)
    return path


def main_env(argv: list[str] | None = None) -> int:
    """CLI: `python -m harness env NAME [--path P] [--torch-from link|pip] [--force] [--quiet]`."""
    parser = argparse.ArgumentParser(
        prog="python -m harness env", description="Create an evaluator's separate environment."
    )
    parser.add_argument("name", choices=ENVIRONMENTS.names())
    parser.add_argument(
        "--path",
        type=Path,
        default=None,
        help="default: $URSA_<NAME>_ENV or <repo>/.cache/envs/<name>",
    )
    parser.add_argument("--torch-from", choices=("link", "pip"), default="link")
    parser.add_argument("--force", action="store_true", help="rebuild even if already built")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    path = create_env(
        args.name, args.path, torch_from=args.torch_from, force=args.force, progress=not args.quiet
    )
    print(json.loads((path / MARKER).read_text()) | {"path": str(path)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main_env())
