"""The evaluator environments the official scorers need, registered with harness.env (which builds
them: `python -m harness env NAME`), and the check that one is built.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.official.resources import Resource, require
from harness.env import ENVIRONMENTS, MARKER, EnvSpec, default_env_path

REPO_ROOT = Path(__file__).resolve().parents[2]

# build: openai-clip's setup.py imports pkg_resources, which setuptools >= 81 no longer ships.
ENVIRONMENTS.register("vbench")(
    EnvSpec(
        build=("setuptools<81", "wheel", "cython"),
        requirements=("vbench==0.1.5",),
        check="import torch, torchvision, numpy, cv2, decord, clip, transformers, vbench; "
        "from vbench import VBench; import vbench.temporal_flickering; "
        "from vbench2_beta_i2v import VBenchI2V",
    )
)


def require_env(name: str, path: Path | str | None = None) -> Path:
    """The built env's path, else MissingResourceError saying how to build it."""
    path = Path(path) if path else default_env_path(name)
    require(
        f"{name} environment",
        [
            Resource(
                path / MARKER, f"python -m harness env {name}  (or set $URSA_{name.upper()}_ENV)"
            )
        ],
    )
    return path
