"""Evaluator environments: argument checks, the built marker, and sharing torch by symlink."""

import subprocess
import sys

import pytest
import torch

from benchmarks.official.envs import require_env
from benchmarks.official.resources import MissingResourceError
from harness.env import MARKER, _link_torch, create_env, is_built


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="env name"):
        create_env("nope", tmp_path)
    with pytest.raises(ValueError, match="torch_from"):
        create_env("vbench", tmp_path, torch_from="conda")
    assert not any(tmp_path.iterdir())  # nothing created


def test_env_counts_as_built_only_with_marker(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("")
    assert not is_built(tmp_path)
    with pytest.raises(MissingResourceError, match="python -m harness env vbench"):
        require_env("vbench", tmp_path)
    (tmp_path / MARKER).write_text("{}")
    assert is_built(tmp_path) and require_env("vbench", tmp_path) == tmp_path


def test_linked_torch_imports_in_a_fresh_venv(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path)], check=True)
    versions = _link_torch(tmp_path)
    assert versions["torch"] == torch.__version__.split("+")[0]
    # torch's pure-python deps (sympy, ...) are pip-installed by create_env, not linked, so
    # check what pip and the importer see rather than importing torch here.
    code = (
        "import importlib.metadata as m, importlib.util as u; "
        "print(m.version('torch'), m.version('torchvision'), u.find_spec('torch').origin)"
    )
    out = subprocess.run(
        [str(tmp_path / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == versions["torch"] and out[1] == versions["torchvision"]
    assert str(tmp_path / "shared-torch" / "torch") in out[2]
