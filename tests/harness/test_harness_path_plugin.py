"""A new probability path is a plug-in of two files (the path class and its registered config),
named in a spec's `plugins:`: validate, run and report use it with no edit to the harness or ursa."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from harness_fixtures import WORLD

REPO = Path(__file__).resolve().parents[2]

PATH_CLASS = '''
"""The cosine mixture path: keep x1 w.p. kappa_t = sin(pi t / 2), else a uniform id."""
import math

import torch

from ursa.paths import MixturePath


class CosinePath(MixturePath):
    def kappa(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(t * math.pi / 2)

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        """kappa_dot / (1 - kappa), float64; inf at t = 1."""
        return (math.pi / 2) * torch.cos(t * math.pi / 2) / (1 - self.kappa(t))
'''

PATH_CONFIG = '''
"""Its config: the `path:` section of kind cosine."""
from typing import Literal

import torch

from cosine_path import CosinePath
from ursa.path_config import PathConfig, register_path


@register_path
class CosinePathConfig(PathConfig):
    """Cosine mixture path: keep x1 w.p. sin(pi t / 2), else a uniform id."""

    kind: Literal["cosine"] = "cosine"

    def build(self, vocab_size: int, embeddings: torch.Tensor | None = None) -> CosinePath:
        return CosinePath(vocab_size)
'''


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_path_plugin_of_two_files_runs_through_validate_run_and_report(tmp_path: Path) -> None:
    (tmp_path / "cosine_path.py").write_text(textwrap.dedent(PATH_CLASS))
    (tmp_path / "cosine_path_config.py").write_text(textwrap.dedent(PATH_CONFIG))
    spec = tmp_path / "cosine.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "cosine",
                "plugins": ["cosine_path_config"],
                "seeds": [0],
                "base": {
                    "benchmark": {
                        "name": "shapes",
                        "world": WORLD,
                        "train_size": 8,
                        "eval_size": 4,
                    },
                    "tokenizer": {"codebook_size": 65},
                    "model": {"preset": "tiny"},
                    "train": {
                        "steps": 2,
                        "batch_size": 4,
                        "checkpoint_every": 2,
                        "warmup_steps": 1,
                    },
                    "sample": {"steps": 2, "batch_size": 4},
                    "score": {"which": ["alignment"]},
                },
                "zip": [
                    {
                        "path": [{"kind": "cosine"}, {"kind": "mixture"}],
                        "labels": ["cosine", "mixture"],
                    }
                ],
                "report": {
                    "headline": "alignment",
                    "baseline": "mixture",
                    "plots": ["linearity", "loss_curves"],
                },
                "executor": {"kind": "inprocess", "threads": 1},
            }
        )
    )
    runs, reports = str(tmp_path / "runs"), str(tmp_path / "reports")

    checked = harness("validate", str(spec), cwd=tmp_path)
    assert checked.returncode == 0 and "2 runs" in checked.stdout, (
        checked.stdout + checked.stderr[-2000:]
    )
    ran = harness(
        "run",
        str(spec),
        "--runs-root",
        runs,
        "--reports-dir",
        reports,
        "--no-progress",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = {
        r["arm"]: r
        for r in (
            json.loads(p.read_text())
            for p in (tmp_path / "runs" / "cosine" / "default").glob("*/result.json")
        )
    }
    assert (
        rows["cosine"]["state"] == "done" and 0.0 <= rows["cosine"]["metrics"]["alignment"] <= 1.0
    )
    config = json.loads(
        next(
            p
            for p in (tmp_path / "runs" / "cosine" / "default").glob("*/config.json")
            if json.loads(p.read_text())["run"]["arm"] == "cosine"
        ).read_text()
    )
    assert config["config"]["path"] == {"kind": "cosine"}
    assert rows["cosine"]["run_id"] != rows["mixture"]["run_id"]

    reported = harness(
        "report", str(spec), "--runs-root", runs, "--reports-dir", reports, cwd=tmp_path
    )
    assert reported.returncode == 0, reported.stderr[-3000:]
    text = (tmp_path / "reports" / "cosine" / "default" / "report.md").read_text()
    assert "cosine" in text and "linearity plot unavailable" not in text

    # a key the plug-in's kind does not have is the same one-paragraph error as for a built-in kind
    spec.write_text(spec.read_text().replace("- kind: cosine", "- {kind: cosine, exponent: 2.0}"))
    refused = harness("validate", str(spec), cwd=tmp_path)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "path.kind 'cosine'" in refused.stderr + refused.stdout
