"""Run ids: stable across key order and processes, sensitive to every value that matters."""

from __future__ import annotations

import copy
import time

from harness.expand import expand, make_run
from harness.identity import assign_ids, canonical_json, stage_ids
from harness.specfile import parse_spec

DATA = {"benchmark": {"name": "shapes"}, "score": {"which": ["alignment"]}}  # every run config names them
SPEC = {"name": "ids", "base": {**DATA, "train": {"steps": 3}, "path": {"kind": "metric"}},
        "grid": {"path.kind": ["metric", "masked"]}, "seeds": [0, 1]}
FP = "data-fp"
CODE = {"package": "0.1.0", "commit": "abc", "tree": "t1", "dirty": False}


def run_id(run, fp: str, code: dict) -> str:
    """The run id is the score-stage id."""
    return stage_ids(run.config, fp, code)["score"]


def _ids(data: dict, code=CODE, fp=FP) -> list[str]:
    return [run_id(r, fp, code) for r in expand(parse_spec(data), "default")]


def test_stable_across_key_order_and_calls() -> None:
    reordered = {"seeds": [0, 1], "grid": {"path.kind": ["metric", "masked"]},
                 "base": {"path": {"kind": "metric"}, "score": {"which": ["alignment"]}, "train": {"steps": 3},
                          "benchmark": {"name": "shapes"}}, "name": "ids"}
    assert _ids(SPEC) == _ids(reordered) == _ids(copy.deepcopy(SPEC))
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == canonical_json({"a": {"c": 3, "d": 2}, "b": 1})
    assert len(set(_ids(SPEC))) == 4  # 2 arms x 2 seeds, all distinct


def test_sensitive_to_config_code_and_data() -> None:
    base = _ids(SPEC)
    for key, value in [("train", {"steps": 4}), ("sample", {"steps": 7}), ("tokenizer", {"codebook_size": 129}),
                       ("benchmark", {"eval_size": 3}), ("score", {"seed": 1})]:
        changed = copy.deepcopy(SPEC)
        changed["base"][key] = {**SPEC["base"].get(key, {}), **value}
        assert set(_ids(changed)).isdisjoint(base), key
    assert set(_ids(SPEC, code={**CODE, "dirty": True})).isdisjoint(base)
    assert set(_ids(SPEC, code={**CODE, "tree": "t2"})).isdisjoint(base)
    assert _ids(SPEC, code={**CODE, "commit": "abd"}) == base  # a commit that leaves the code trees alone
    assert set(_ids(SPEC, fp="other-tokenizer")).isdisjoint(base)


def test_every_path_key_of_a_run_enters_its_id() -> None:
    """A run's path section holds only its kind's keys, each of which changes the id: c for a metric
    arm, exponent for a masked one (the keys of another kind are refused: test_harness_spec)."""
    def first(data: dict) -> str:
        return _ids(data)[0]

    masked = {**SPEC, "base": {**SPEC["base"], "path": {"kind": "masked"}}, "grid": {}}
    assert first({**masked, "base": {**masked["base"], "path": {"kind": "masked", "exponent": 2.0}}}) != first(masked)
    metric = {**SPEC, "grid": {}}
    assert first({**metric, "base": {**SPEC["base"], "path": {"kind": "metric", "c": 5.0}}}) != first(metric)
    assert first({**metric, "base": {**SPEC["base"], "path": {"kind": "metric", "c": 3.0}}}) == first(metric)


def test_thousand_run_grid_expands_with_unique_ids_and_validates_each_world_once() -> None:
    """1,000 runs, 1,000 ids; the costly check (building the shapes world) runs once per distinct world, not
    per run (what keeps expansion of a 1,000-run grid near 1 s; the wall time is printed, not asserted)."""
    from benchmarks.shapes.plugin import _world  # the cached shapes-world construction its Options validate with

    data = {"name": "big", "base": DATA, "grid": {"train.shift": [0.5 + 0.1 * i for i in range(10)],
                                    "sample.steps": list(range(1, 11)), "path.c": [1.0, 2.0, 3.0, 4.0, 5.0]},
            "seeds": [0, 1]}
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
    assert (run.config.train.seed, run.config.sample.seed, run.config.train.steps, run.arm) == (5, 5, 9, "train.steps=9")


def test_code_dirs_exist() -> None:
    """Every path whose code enters run ids exists (a renamed module must not drop out silently)."""
    from harness.identity import CODE_DIRS, REPO_ROOT

    missing = [p for p in CODE_DIRS if not (REPO_ROOT / p).exists()]
    assert not missing, missing
