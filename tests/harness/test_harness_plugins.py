"""Plug-ins: a third-party package registers a benchmark, tokenizers and a scorer through the
`ursa_bench.plugins` entry point and runs through `python -m harness run` with no change under
harness/; registry errors are one clear paragraph."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from harness_fixtures import WORLD

from harness import plugins
from harness.spec import SpecError
from harness.specfile import parse_spec

REPO = Path(__file__).resolve().parents[2]
PKG = Path(__file__).resolve().parent / "plugin_pkg" / "toy_bars"


def install_toy(tmp_path: Path, entry_point: bool = True) -> dict[str, str]:
    """Lay the toy package out as `pip install` would (module + dist-info with entry_points.txt);
    returns an environment whose PYTHONPATH sees it."""
    site = tmp_path / "site"
    shutil.copytree(PKG, site / "toy_bars")
    if entry_point:
        info = site / "toy_bars-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-bars\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(
            f"[{plugins.ENTRY_POINT_GROUP}]\ntoy_bars = toy_bars\n"
        )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def toy_spec(path: Path, **top) -> Path:
    data = {
        "name": "toy",
        "base": {
            "benchmark": {
                "name": "toy_bars",
                "frames": 4,
                "size": 16,
                "train_size": 16,
                "eval_size": 4,
            },
            "model": {"preset": "tiny"},
            "train": {"steps": 4, "batch_size": 4, "checkpoint_every": 2, "warmup_steps": 1},
            "sample": {"steps": 2, "batch_size": 4},
            "score": {"which": ["toy_colour"], "options": {"toy_colour": {"min_pixels": 4}}},
        },
        "grid": {"path.kind": ["metric", "masked"]},
        "executor": {"kind": "inprocess", "threads": 1},
        **top,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def harness(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_entry_point_package_runs_through_the_harness(tmp_path: Path) -> None:
    env = install_toy(tmp_path)
    spec = toy_spec(tmp_path / "toy.yaml")
    out = harness(
        "run",
        str(spec),
        "--runs-root",
        str(tmp_path / "runs"),
        "--reports-dir",
        str(tmp_path / "reports"),
        "--no-progress",
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [
        json.loads(p.read_text())
        for p in (tmp_path / "runs" / "toy" / "default").glob("*/result.json")
    ]
    by_arm = {r["arm"]: r for r in rows}
    assert set(by_arm) == {"path.kind=metric", "path.kind=masked", "ref:real", "ref:wrong_colour"}
    assert all(r["state"] == "done" for r in rows)
    # the scorer's floor and ceiling: real clips show the captioned colour, recoloured ones never do
    assert by_arm["ref:real"]["metrics"]["colour_match"] == 1.0
    assert by_arm["ref:wrong_colour"]["metrics"]["colour_match"] == 0.0
    assert 0.0 <= by_arm["path.kind=metric"]["metrics"]["colour_match"] <= 1.0
    assert (tmp_path / "reports" / "toy" / "default" / "report.md").is_file()

    listing = harness("plugins", env=env, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    for needle in (
        "toy_bars  [toy_bars]",
        "toy_colour  [toy_bars]",
        "min_pixels: int (default 8)",
        "colour_match [0, 1] higher is better",
        "toy_palette",
        "toy_words",
    ):
        assert needle in listing.stdout


def test_a_spec_can_import_its_plugin_modules(tmp_path: Path) -> None:
    env = install_toy(tmp_path, entry_point=False)
    spec = toy_spec(tmp_path / "toy.yaml", plugins=["toy_bars"])
    out = harness("validate", str(spec), env=env, cwd=tmp_path)
    assert out.returncode == 0 and "2 runs" in out.stdout, out.stderr
    bad = toy_spec(tmp_path / "bad.yaml", plugins=["toy_barz"])
    out = harness("validate", str(bad), env=env, cwd=tmp_path)
    assert out.returncode == 2 and "plugins[0]" in out.stderr and "toy_barz" in out.stderr
    assert "Traceback" not in out.stderr


def test_python_m_harness_plugins_lists_the_shapes_components() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "harness", "plugins"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for needle in (
        "benchmarks (benchmark.name):",
        "shapes  [benchmarks.shapes.plugin]",
        "train_size: int (default 256)",
        "codebook_size: int (default 65)",
        "alignment  [benchmarks.shapes.plugin]",
        "fid [0, inf] lower is better",
        "executors (executor.kind):",
        "slurm  [harness.executors.slurm]",
    ):
        assert needle in text, needle


def _spec(**base) -> dict:
    run = {"benchmark": {"name": "shapes", "world": WORLD}, "score": {"which": ["alignment"]}}
    for key, value in base.items():
        run[key] = {**run.get(key, {}), **value}
    return {"name": "p", "base": run}


@pytest.mark.parametrize(
    "base, needles",
    [
        (
            {"benchmark": {"name": "shapez"}},
            ["benchmark.name", "'shapez'", "Did you mean 'shapes'?", "plugins"],
        ),
        ({"benchmark": {"wrld": {}}}, ["unknown key", "benchmark.wrld", "Did you mean 'world'?"]),
        ({"benchmark": {"train_size": 0}}, ["benchmark.train_size", "greater than or equal to 1"]),
        ({"tokenizer": {"codebook_size": 64}}, ["tokenizer.codebook_size", "1 + 4 * (M - 1)"]),
        (
            {"text_tokenizer": {"name": "hf", "path": "/nonexistent/tok"}},
            ["text_tokenizer.path", "/nonexistent/tok"],
        ),
        ({"score": {"which": ["alignmnt"]}}, ["score.which", "Did you mean 'alignment'?"]),
        (
            {"score": {"which": ["alignment"], "options": {"quality": {}}}},
            ["score.options.quality"],
        ),
        ({"sample": {"tasks": ["t2v", "i2vv"]}}, ["sample.tasks", "'i2vv'", "Did you mean 'i2v'?"]),
        ({"sample": {"tasks": ["t2v", "t2v"]}}, ["sample.tasks", "duplicates"]),
        ({"model": {"overrides": {"visual_vocab_size": 129}}}, ["visual_vocab_size", "65"]),
    ],
)
def test_plugin_errors_name_the_key_and_what_is_registered(base: dict, needles: list[str]) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(_spec(**base), source="p.yaml")
    msg = str(err.value)
    assert msg.startswith("p.yaml: ") and "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_registry_rejects_a_second_component_under_a_taken_name() -> None:
    reg: plugins.Registry = plugins.Registry("widget", "widget.name")

    @reg.register("a")
    class A:  # noqa: B903 - a stand-in component
        pass

    reg.register("a")(A)  # the same object again (a module imported twice) is fine
    with pytest.raises(plugins.PluginError, match="already registered"):

        @reg.register("a")
        class B:
            pass


def test_every_scorer_declares_the_metrics_it_returns(tmp_path: Path) -> None:
    """Each shapes scorer's output names are declared (ranges hold on real clips)."""
    import torch

    from benchmarks.shapes.prompts import load_suite, real_videos
    from benchmarks.shapes.world import WorldConfig
    from harness.data import load_data

    data = load_data(
        {
            "benchmark": {
                "name": "shapes",
                "world": WORLD,
                "train_size": 4,
                "eval_size": 4,
                "task_size": 2,
                "seed": 0,
            },
            "tokenizer": {"name": "shapes", "codebook_size": 65, "seed": 0},
            "text_tokenizer": {"name": "shapes"},
        },
        tmp_path,
    )
    for task in ("t2v", "i2v", "long"):
        prompts = load_suite(
            {"t2v": "eval", "i2v": "i2v", "long": "long"}[task], 4, 0, WorldConfig(**WORLD)
        )
        for name in ("alignment", "quality", "tasks"):
            cls = plugins.SCORERS.get(name)
            declared = {m.name: m for m in cls.metrics}
            out = cls(cls.Options(), data.benchmark, tmp_path).score(
                real_videos(prompts), prompts, task, 0
            )
            for metric, value in out.items():
                assert metric in declared, (name, metric)
                assert declared[metric].low <= value <= declared[metric].high, (metric, value)
    assert isinstance(real_videos(prompts), torch.Tensor)


def test_the_worked_example_in_docs_plugins_md_works(tmp_path: Path, monkeypatch) -> None:
    """docs/plugins.md's scorer, as written there, registers through a spec's plugins: list."""
    import re

    import torch

    doc = (REPO / "docs" / "plugins.md").read_text()
    code = re.search(r"```python\n(# mypkg/brightness.py\n.*?)```", doc, re.S).group(1)
    (tmp_path / "doc_brightness.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = parse_spec(
        {
            "name": "doc",
            "plugins": ["doc_brightness"],
            "base": {
                "benchmark": {"name": "shapes", "world": WORLD},
                "score": {
                    "which": ["alignment", "brightness"],
                    "options": {"brightness": {"gamma": 2.2}},
                },
            },
        }
    )
    assert spec.base.score.which == ["alignment", "brightness"]
    cls = plugins.SCORERS.get("brightness")
    scorer = cls(cls.Options(gamma=2.2), None, tmp_path)
    white = torch.full((2, 3, 8, 8, 3), 255, dtype=torch.uint8)
    assert scorer.score(white, [], "t2v", 0) == {"brightness": 1.0}
    with pytest.raises(SpecError, match=r"score\.options\.brightness\.gamma"):
        parse_spec(
            {
                "name": "doc",
                "plugins": ["doc_brightness"],
                "base": {
                    "benchmark": {"name": "shapes", "world": WORLD},
                    "score": {"which": ["brightness"], "options": {"brightness": {"gamma": -1}}},
                },
            }
        )
