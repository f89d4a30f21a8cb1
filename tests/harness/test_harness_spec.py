"""Spec validation: clear SpecErrors for every kind of mistake, and fuzzing of malformed specs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.spec import SpecError
from harness.specfile import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]

VALID = {
    "name": "demo",
    "base": {
        "path": {"kind": "metric"},
        "train": {"steps": 5, "batch_size": 4},
        "benchmark": {"name": "shapes", "world": {"frames": 4}},
        "score": {"which": ["alignment"]},
    },
    "grid": {"path.kind": ["masked", "mixture", "metric"]},
    "seeds": [0, 1],
    "profiles": {"smoke": {"train.steps": 2, "seeds": [0]}},
}


def write(tmp_path: Path, data: dict | str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def error_of(tmp_path: Path, data: dict | str) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, data))
    return str(info.value)


def test_valid_spec_and_shipped_ablations_load(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, VALID))
    assert spec.base.train.steps == 5 and spec.grid["path.kind"][0] == "masked"
    for path in sorted((ROOT / "ablations").glob("*.yaml")):
        load_spec(path)


@pytest.mark.parametrize(
    "mutate, needles",
    [
        (
            lambda d: d["base"]["train"].update(shfit=2.0),
            ["base.train.shfit", "Did you mean 'shift'"],
        ),
        (lambda d: d.update(seedz=[1]), ["seedz", "Did you mean 'seeds'"]),
        (
            lambda d: d["base"]["train"].update(shift=0),
            ["base.train.shift", "greater than 0", "got 0"],
        ),
        (lambda d: d["base"]["path"].update(alpha=-1), ["base.path.alpha", "greater than 0"]),
        (lambda d: d["base"]["path"].update(c=0.0), ["base.path.c", "greater than 0"]),
        (
            lambda d: d["base"]["train"].update(steps=-1),
            ["base.train.steps", "greater than or equal to 0"],
        ),
        (
            lambda d: d["base"]["train"].update(steps=0),
            ["base", "train.steps 0", "model.init_from"],
        ),
        (
            lambda d: d["base"]["train"].update(p_first=1.5),
            ["base.train.p_first", "less than or equal to 1"],
        ),
        (
            lambda d: d["base"]["train"].update(p_first=0.6, p_first_last=0.6),
            ["p_first + p_first_last"],
        ),
        (
            lambda d: d["base"]["train"].update(steps="many"),
            ["base.train.steps", "integer", "'many'"],
        ),
        (
            lambda d: d["grid"].update({"train.shift": [1.0, -2.0]}),
            ["grid.train.shift[1]", "greater than 0"],
        ),
        (
            lambda d: d["grid"].update({"train.shfit": [1.0]}),
            ["grid.train.shfit", "Did you mean 'train.shift'"],
        ),
        (
            lambda d: d["base"].update(model={"overrides": {"visual_vocab_size": 99}}),
            ["visual_vocab_size", "tokenizer's K (65"],
        ),
        (
            lambda d: d["profiles"].update(huge={}),
            ["profiles.huge", "'smoke', 'ci', 'default' or 'full'"],
        ),
        (
            lambda d: d["profiles"]["smoke"].update({"train.stepz": 1}),
            ["profiles.smoke", "train.stepz"],
        ),
        (
            lambda d: d.update(zip=[{"train.shift": [1, 2], "sample.shift": [1]}]),
            ["zip", "equal non-zero lengths"],
        ),
        (
            lambda d: d["base"]["benchmark"]["world"].update(hieght=32),
            ["benchmark.world", "Did you mean 'height'"],
        ),
        (lambda d: d["base"].update(tokenizer={"codebook_size": 64}), ["codebook_size", "got 64"]),
        (
            lambda d: d["base"].update(model={"init_from": "/no/such/ckpt"}),
            ["base.model.init_from", "/no/such/ckpt"],
        ),
    ],
)
def test_errors_name_file_key_and_expectation(tmp_path: Path, mutate, needles: list[str]) -> None:
    data = copy.deepcopy(VALID)
    mutate(data)
    msg = error_of(tmp_path, data)
    assert str(tmp_path / "spec.yaml") in msg
    for needle in needles:
        assert needle in msg, msg
    assert "\n" not in msg  # one paragraph


@pytest.mark.parametrize(
    "report, needles",
    [
        (
            {"baseline": "path.kind=absorbing"},
            [
                "report.baseline",
                "No arm has 'path.kind=absorbing'; path.kind takes masked, mixture, "
                "metric. The arms (3): path.kind=masked, train.shift=1; path.kind=mixture, train.shift=1; "
                "path.kind=metric",
            ],
        ),
        ({"baseline": "path.kind=maskd"}, ["did you mean 'path.kind=masked'?"]),
        (
            {"baseline": "sample.steps=99"},
            ["'sample.steps' is not a key the arms vary (path.kind, train.shift)"],
        ),
        (
            {"baseline": "path.kind=masked, train.shift=1.0"},
            [
                "'train.shift=1.0' is written 'train.shift=1' in arm labels (numbers print as %g: "
                "1.0 is 1)"
            ],
        ),
        (
            {"primary": {"arm": "path.kind=metrc"}},
            ["report.primary.arm", "did you mean 'path.kind=metric'?"],
        ),
        (
            {"primary": {"metric": "alignmnet"}},
            ["report.primary.metric", "Did you mean 'alignment'?"],
        ),
        (
            {"primary": {"statistic": "steps_to"}},
            ["report.primary", "a level with statistic steps_to"],
        ),
        (
            {"primary": {"statistic": "curve_mean", "metric": "alignment"}},
            ["report.primary.statistic", "snapshots"],
        ),
        ({"primary": {"statistic": "median"}}, ["report.primary.statistic", "'final'"]),
        ({"headline": None, "primary": {}}, ["report.primary.metric", "got neither"]),
        (
            {"trend": {"axis": "train.shift"}},
            ["report.trend: expected report.compare_within beside it"],
        ),
        (
            {"compare_within": "path.kind", "trend": {"axis": "train.shfit"}},
            ["report.trend.axis: expected a numeric key the spec varies", "got 'train.shfit'"],
        ),
        (
            {"scaling": {"semantics": ["alignment_shpe"]}},
            ["report.scaling.semantics[0]", "Did you mean 'alignment_shape'?"],
        ),
    ],
)
def test_report_names_arms_and_metrics_that_exist(
    tmp_path: Path, report: dict, needles: list[str]
) -> None:
    """A baseline or primary endpoint that names no arm or metric is an error at validate, with the
    arm labels and a did-you-mean (a number written 1.0 where labels print 1 is explained)."""
    data = copy.deepcopy(VALID)
    data["grid"]["train.shift"] = [1.0]
    data["report"] = {"headline": "alignment", **report}
    msg = error_of(tmp_path, data)
    for needle in needles:
        assert needle in msg, msg
    assert "\n" not in msg


def test_report_arms_that_exist_validate(tmp_path: Path) -> None:
    data = copy.deepcopy(VALID)
    data["base"]["train"]["snapshots"] = [0.5, 1.0]
    data["report"] = {
        "headline": "alignment",
        "baseline": "path.kind=masked",
        "primary": {"arm": "path.kind=metric", "statistic": "steps_to", "level": 0.5},
    }
    spec = load_spec(write(tmp_path, data))
    assert spec.report.primary.level == 0.5 and spec.report.primary.metric is None
    data["profiles"]["smoke"]["grid.path.kind"] = ["mixture", "metric"]  # no baseline arm there
    assert "report.baseline: expected an arm (profile smoke)" in error_of(tmp_path, data)


def test_masked_path_gets_mask_token_and_contradiction_is_caught(tmp_path: Path) -> None:
    from harness.data import data_for
    from harness.expand import expand
    from harness.stages import build_model

    runs = expand(load_spec(write(tmp_path, VALID)), "smoke")
    data = data_for(runs[0].config, tmp_path / "runs")
    by_kind = {r.config.path.kind: build_model(r.config, data).config.mask_token for r in runs}
    assert by_kind == {"masked": True, "mixture": False, "metric": False}
    bad = copy.deepcopy(VALID)
    bad["base"]["model"] = {"overrides": {"mask_token": False}}
    assert "mask_token" in error_of(tmp_path, bad)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            {"kind": "masked", "c": 3.0},
            ["unknown key 'base.path.c'", "base.path.kind 'masked'", "kind, exponent"],
        ),
        (
            {"kind": "metric", "exponent": 2.0},
            [
                "unknown key 'base.path.exponent'",
                "base.path.kind 'metric'",
                "kind, c, alpha, calibrate",
            ],
        ),
        (
            {"kind": "mixture", "calibrate": True},
            ["unknown key 'base.path.calibrate'", "path.kind 'mixture'"],
        ),
        (
            {"kind": "absorbing"},
            [
                "base.path.kind: expected a registered path: 'masked', 'metric' or 'mixture'",
                "got 'absorbing'",
            ],
        ),
        ({"kind": "metric", "c": True}, ["base.path.c: expected a number, got True"]),
    ],
)
def test_each_path_kind_takes_only_its_own_keys(
    tmp_path: Path, path: dict, expected: list[str]
) -> None:
    bad = copy.deepcopy(VALID)
    bad["base"]["path"] = path
    bad.pop("grid")
    message = error_of(tmp_path, bad)
    assert all(part in message for part in expected), message
    assert "Traceback" not in message


def test_a_kind_axis_over_a_base_with_another_kinds_keys_is_refused(tmp_path: Path) -> None:
    """The grid sets path.kind over a base that gives c: the masked arm would carry a key it does not
    have (before, it was dropped from the run id, while path.exponent entered a metric arm's)."""
    bad = copy.deepcopy(VALID)
    bad["base"]["path"] = {"kind": "metric", "c": 3.0}
    message = error_of(tmp_path, bad)
    assert (
        "grid.path.kind[0]" in message
        and "run-config key path.c" in message
        and "path.kind 'masked'" in message
    )


def test_include_merges_relative_and_detects_cycles(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    data = {
        "benchmark": {"name": "shapes"},
        "score": {"which": ["alignment"]},
    }  # every run config names them
    write(tmp_path / "sub", {"base": {**data, "train": {"steps": 7, "lr": 0.01}}}, "common.yaml")
    spec = load_spec(
        write(
            tmp_path, {"include": "sub/common.yaml", "name": "x", "base": {"train": {"steps": 3}}}
        )
    )
    assert (spec.base.train.steps, spec.base.train.lr) == (3, 0.01)
    write(
        tmp_path,
        {"name": "p", "grid": {"train.steps": [1, 2]}, "base": {**data, "train": {"lr": 0.5}}},
        "parent.yaml",
    )
    child = load_spec(
        write(tmp_path, {"include": "parent.yaml", "name": "c", "grid": {}}, "child.yaml")
    )
    assert child.grid == {} and child.base.train.lr == 0.5  # axes replace, base merges
    write(tmp_path, {"include": "b.yaml", "name": "a"}, "a.yaml")
    write(tmp_path, {"include": "a.yaml"}, "b.yaml")
    with pytest.raises(SpecError, match="cycle"):
        load_spec(tmp_path / "a.yaml")
    assert "missing path" in error_of(tmp_path, {"include": "nope.yaml", "name": "x"})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="expected an existing YAML file"):
        load_spec(tmp_path / "absent.yaml")
    assert "valid YAML" in error_of(tmp_path, "name: [unclosed\n")
    assert "expected a mapping" in error_of(tmp_path, "- a\n- b\n")


# ----------------------------------------------------------------------------- fuzzing


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["metric", "masked", "shift", "train.shift", "path.kind", "smoke", -0.0]),
)


@st.composite
def mutated_specs(draw):
    data = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        target = draw(st.sampled_from(paths)) if paths else ()
        parent = data
        for part in target[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["replace", "delete", "add_key", "rename"]))
        key = target[-1] if target else None
        if op == "replace" and target:
            parent[key] = draw(junk)
        elif op == "delete" and target:
            parent.pop(key) if isinstance(parent, dict) else parent.pop(key)
        elif op == "add_key" and isinstance(parent, dict):
            parent[draw(st.one_of(st.text(max_size=8), st.integers()))] = draw(junk)
        elif op == "rename" and isinstance(parent, dict) and key in parent:
            parent[draw(st.text(max_size=8))] = parent.pop(key)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_fuzz_mutated_specs_only_raise_spec_error(data) -> None:
    try:
        spec = parse_spec(data, "fuzz.yaml")
    except SpecError as exc:
        assert str(exc).startswith("fuzz.yaml") and "\n" not in str(exc)
        return
    from harness.expand import expand

    for profile in ("smoke", "default"):
        try:
            expand(spec, profile)
        except SpecError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_random_yaml_text(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.yaml"
        p.write_text(text)
        try:
            load_spec(p)
        except SpecError:
            pass


def test_cuda_slurm_job_needs_a_gpu_per_task(tmp_path: Path) -> None:
    """executor.tasks_per_node > slurm.gpus_per_node is a spec error for runs on CUDA (one task per
    GPU), told before any compute; CPU runs may have any number of tasks."""
    data = copy.deepcopy(VALID)
    data["executor"] = {"kind": "slurm", "tasks_per_node": 4, "slurm": {"gpus_per_node": 2}}
    load_spec(write(tmp_path, data))  # CPU training: no GPU needed
    data["grid"]["train.device"] = ["cpu", "cuda"]
    message = error_of(tmp_path, data)
    assert "executor.tasks_per_node: expected at most executor.slurm.gpus_per_node = 2" in message
    assert "'cuda'" in message and "got 4" in message
    data["executor"]["slurm"]["gpus_per_node"] = 4
    load_spec(write(tmp_path, data))
