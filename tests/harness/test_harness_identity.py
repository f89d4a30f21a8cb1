"""Run ids: stable across key order and processes, sensitive to every value that matters."""

from __future__ import annotations

import copy
import time

from harness.expand import expand, make_run
from harness.identity import assign_ids, canonical_json, stage_ids
from harness.specfile import parse_spec

DATA = {
    "benchmark": {"name": "shapes"},
    "score": {"which": ["alignment"]},
}  # every run config names them
SPEC = {
    "name": "ids",
    "base": {**DATA, "train": {"steps": 3}, "path": {"kind": "metric"}},
    "grid": {"path.kind": ["metric", "masked"]},
    "seeds": [0, 1],
}
FP = "data-fp"
CODE = {
    "data": {"benchmark": "b1", "tokenizer": "t1", "text_tokenizer": "x1"},
    "train": {"stages": "s1", "path": "p1"},
    "sample": {"t2v": "k1"},
    "score": {"alignment": "a1"},
}


def run_id(run, fp: str, code: dict) -> str:
    """The run id is the score-stage id."""
    return stage_ids(run.config, fp, code)["score"]


def _ids(data: dict, code=CODE, fp=FP) -> list[str]:
    return [run_id(r, fp, code) for r in expand(parse_spec(data), "default")]


def test_stable_across_key_order_and_calls() -> None:
    reordered = {
        "seeds": [0, 1],
        "grid": {"path.kind": ["metric", "masked"]},
        "base": {
            "path": {"kind": "metric"},
            "score": {"which": ["alignment"]},
            "train": {"steps": 3},
            "benchmark": {"name": "shapes"},
        },
        "name": "ids",
    }
    assert _ids(SPEC) == _ids(reordered) == _ids(copy.deepcopy(SPEC))
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == canonical_json(
        {"a": {"c": 3, "d": 2}, "b": 1}
    )
    assert len(set(_ids(SPEC))) == 4  # 2 arms x 2 seeds, all distinct


def test_sensitive_to_config_code_and_data() -> None:
    base = _ids(SPEC)
    for key, value in [
        ("train", {"steps": 4}),
        ("sample", {"steps": 7}),
        ("tokenizer", {"codebook_size": 129}),
        ("benchmark", {"eval_size": 3}),
        ("score", {"seed": 1}),
    ]:
        changed = copy.deepcopy(SPEC)
        changed["base"][key] = {**SPEC["base"].get(key, {}), **value}
        assert set(_ids(changed)).isdisjoint(base), key
    for stage, component in [
        ("data", "tokenizer"),
        ("train", "path"),
        ("sample", "t2v"),
        ("score", "alignment"),
    ]:
        changed = {**CODE, stage: {**CODE[stage], component: "v2"}}
        assert set(_ids(SPEC, code=changed)).isdisjoint(base), (stage, component)
    assert set(_ids(SPEC, fp="other-tokenizer")).isdisjoint(base)


def test_every_path_key_of_a_run_enters_its_id() -> None:
    """A run's path section holds only its kind's keys, each of which changes the id: c for a metric
    arm, exponent for a masked one (the keys of another kind are refused: test_harness_spec)."""

    def first(data: dict) -> str:
        return _ids(data)[0]

    masked = {**SPEC, "base": {**SPEC["base"], "path": {"kind": "masked"}}, "grid": {}}
    assert first(
        {**masked, "base": {**masked["base"], "path": {"kind": "masked", "exponent": 2.0}}}
    ) != first(masked)
    metric = {**SPEC, "grid": {}}
    assert first(
        {**metric, "base": {**SPEC["base"], "path": {"kind": "metric", "c": 5.0}}}
    ) != first(metric)
    assert first(
        {**metric, "base": {**SPEC["base"], "path": {"kind": "metric", "c": 3.0}}}
    ) == first(metric)


def test_thousand_run_grid_expands_with_unique_ids_and_validates_each_world_once() -> None:
    """1,000 runs, 1,000 ids; the costly check (building the shapes world) runs once per distinct world, not
    per run (what keeps expansion of a 1,000-run grid near 1 s; the wall time is printed, not asserted)."""
    from benchmarks.shapes.plugin import (
        _world,
    )  # the cached shapes-world construction its Options validate with

    data = {
        "name": "big",
        "base": DATA,
        "grid": {
            "train.shift": [0.5 + 0.1 * i for i in range(10)],
            "sample.steps": list(range(1, 11)),
            "path.c": [1.0, 2.0, 3.0, 4.0, 5.0],
        },
        "seeds": [0, 1],
    }
    parse_spec(data)  # warm imports and the per-world caches
    misses = _world.cache_info().misses
    start = time.perf_counter()
    runs = assign_ids(expand(parse_spec(data), "default"), lambda d: FP)
    print(f"1,000-run expansion + validation + ids: {time.perf_counter() - start:.2f} s")
    assert len(runs) == 1000 and len({r.run_id for r in runs}) == 1000
    assert _world.cache_info().misses == misses


def test_make_run_sets_seed_on_train_and_sample() -> None:
    spec = parse_spec(SPEC)
    run = make_run(spec, "default", spec.base.model_dump(), {"train.steps": 9}, seed=5)
    assert (run.config.train.seed, run.config.sample.seed, run.config.train.steps, run.arm) == (
        5,
        5,
        9,
        "train.steps=9",
    )


def test_every_registered_component_has_a_code_version_over_its_own_module() -> None:
    """A component's version reads its own module (a renamed module cannot drop out silently)."""
    from harness import plugins
    from harness.codehash import REPO_ROOT, _closure, version_of

    for registry in (
        plugins.BENCHMARKS,
        plugins.VISUAL_TOKENIZERS,
        plugins.TEXT_TOKENIZERS,
        plugins.SCORERS,
        plugins.TASKS,
        plugins.PATHS,
    ):
        for name in registry.names():
            component = registry.get(name)
            assert len(version_of(component)) == 16, (registry.kind, name)
            assert component.__module__ in _closure(component.__module__, (REPO_ROOT,)), (
                registry.kind,
                name,
            )


# ----------------------------------------------------------------------------- code versions

MODULE_A = '''
"""Module a: its docstring."""
from probe_pkg import b


def f(x: int) -> int:
    """f's docstring."""
    if x < 0:
        raise ValueError(f"x: expected >= 0, got {x}")
    return b.g(x) + 1  # a comment
'''

MODULE_A_EDITED = '''
"""Module a, documented again."""
from probe_pkg import b


def f(x: int) -> int:
    # only docs, comments, formatting and the error's text differ
    if x < 0:
        raise ValueError(
            "x must not be negative: " + str(x)
        )
    return b.g(x) + 1
'''


def _probe_package(tmp_path, monkeypatch, a: str, b: str = "def g(x):\n    return 2 * x\n") -> str:
    from harness.codehash import clear_cache, module_version

    pkg = tmp_path / "probe_pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(a)
    (pkg / "b.py").write_text(b)
    monkeypatch.syspath_prepend(str(tmp_path))
    clear_cache()
    return module_version("probe_pkg.a")


def test_docstrings_comments_formatting_and_error_texts_keep_a_code_version(
    tmp_path, monkeypatch
) -> None:
    first = _probe_package(tmp_path, monkeypatch, MODULE_A)
    assert _probe_package(tmp_path, monkeypatch, MODULE_A_EDITED) == first
    assert (
        _probe_package(tmp_path, monkeypatch, MODULE_A.replace("+ 1", "+ 2")) != first
    )  # its code
    assert (
        _probe_package(tmp_path, monkeypatch, MODULE_A, b="def g(x):\n    return 3 * x\n") != first
    )  # an import's


def test_run_ids_hash_python_modules_only() -> None:
    """A docs, test or report edit keeps every run id: only the modules components import are read."""
    from harness.codehash import REPO_ROOT, _closure

    files = _closure("harness.stages", (REPO_ROOT,)) | _closure(
        "benchmarks.shapes.plugin", (REPO_ROOT,)
    )
    assert files and all(p.suffix == ".py" for p in files.values())
    assert not any(m.startswith(("tests", "docs", "reports", "scripts")) for m in files)


SCORER = '''
import torch

from harness.plugins import SCORERS, Metric, Scorer

SCORER_VERSION = 1  # bump when it computes something else from the same samples


@SCORERS.register("probe_brightness")
class Brightness(Scorer):
    """Mean intensity of the clips."""

    metrics = (Metric("probe_brightness", 0.0, 1.0),)

    def score(self, videos: torch.Tensor, prompts: list, task: str, seed: int) -> dict[str, float]:
        return {"probe_brightness": float(videos.float().mean() / 255)}
'''

PATH = """
from typing import Literal

from ursa.path_config import PathConfig, register_path
from ursa.paths import MixturePath


@register_path
class ProbePathConfig(PathConfig):
    kind: Literal["probe"] = "probe"

    def build(self, vocab_size, embeddings=None):
        return MixturePath(vocab_size, 1.0)
"""


def _plugin_ids(
    tmp_path, monkeypatch, request, modules: dict[str, str], path: dict
) -> dict[str, str]:
    """Stage ids of one run of a spec whose `plugins:` are `modules` ({name: source}, written into
    tmp_path), each module imported afresh; what they register is removed when the test ends."""
    import importlib
    import sys

    from harness import plugins
    from harness.codehash import clear_cache
    from ursa import path_config

    for name, source in modules.items():
        (tmp_path / f"{name}.py").write_text(source)
        sys.modules.pop(name, None)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    request.addfinalizer(
        lambda: (
            plugins.SCORERS._items.pop("probe_brightness", None),
            path_config.PATHS.pop("probe", None),
            [sys.modules.pop(n, None) for n in modules],
        )
    )
    clear_cache()
    spec = parse_spec(
        {
            "name": "probe",
            "plugins": list(modules),
            "base": {
                **DATA,
                "path": path,
                "train": {"steps": 3},
                "score": {"which": ["alignment", "probe_brightness"]},
            },
        }
    )
    return stage_ids(expand(spec, "default")[0].config, FP)


def test_a_scorer_version_bump_recomputes_exactly_the_score_stage(
    tmp_path, monkeypatch, request
) -> None:
    before = _plugin_ids(
        tmp_path, monkeypatch, request, {"probe_scorer": SCORER}, {"kind": "metric"}
    )
    bumped = SCORER.replace("SCORER_VERSION = 1", "SCORER_VERSION = 2")
    after = _plugin_ids(
        tmp_path, monkeypatch, request, {"probe_scorer": bumped}, {"kind": "metric"}
    )
    assert after["train"] == before["train"] and after["sample"] == before["sample"]
    assert (
        after["score"] != before["score"]
    )  # a new run id: the finished run is scored again, not skipped
    documented = SCORER.replace(
        '"""Mean intensity of the clips."""', '"""The mean pixel intensity."""'
    )
    assert (
        _plugin_ids(
            tmp_path, monkeypatch, request, {"probe_scorer": documented}, {"kind": "metric"}
        )
        == before
    )


def test_a_path_plugins_code_change_recomputes_its_training_and_what_follows(
    tmp_path, monkeypatch, request
) -> None:
    modules = {"probe_scorer": SCORER, "probe_path": PATH}
    before = _plugin_ids(tmp_path, monkeypatch, request, modules, {"kind": "probe"})
    changed = {
        **modules,
        "probe_path": PATH.replace("MixturePath(vocab_size, 1.0)", "MixturePath(vocab_size, 2.0)"),
    }
    after = _plugin_ids(tmp_path, monkeypatch, request, changed, {"kind": "probe"})
    assert all(after[stage] != before[stage] for stage in ("train", "sample", "score"))
    # the metric arms of the same spec do not run the plug-in path: their ids stay
    assert _plugin_ids(tmp_path, monkeypatch, request, modules, {"kind": "metric"}) == _plugin_ids(
        tmp_path, monkeypatch, request, changed, {"kind": "metric"}
    )
