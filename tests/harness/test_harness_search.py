"""harness.search: Optuna study on a real SQLite storage: resume to an exact budget, enqueued
points first, pinned sampler seed, grid points never repeated across processes, failures."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import optuna
import pytest

from harness.search import TrialOutcome, counted, grid_space, open_study, optimize
from harness.spec import SearchParam
from harness.specfile import parse_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_spec(**search: Any):
    block = {
        "params": {
            "path.c": {"type": "float", "low": 0.5, "high": 5.0},
            "path.alpha": {"type": "float", "low": 0.3, "high": 2.0},
        },
        "n_trials": 5,
        "objective": "alignment",
        "direction": "maximize",
        "sampler_seed": 7,
        **search,
    }
    base = {
        "benchmark": {"name": "shapes"},
        "score": {"which": ["alignment"]},
    }  # every run config names them
    return parse_spec({"name": "path_search_test", "base": base, "seeds": [0], "search": block})


class Recorder:
    """Objective with a known optimum at (c, alpha) = (3, 1); remembers every call."""

    def __init__(self, fail_on: set[int] = frozenset()) -> None:
        self.calls: list[tuple[int, dict[str, Any]]] = []
        self.fail_on = fail_on

    def __call__(self, params: dict[str, Any], number: int) -> TrialOutcome:
        self.calls.append((number, params))
        if number in self.fail_on:
            return TrialOutcome(None, [f"run{number}"], "RuntimeError: boom")
        value = -((params["path.c"] - 3.0) ** 2) - (params["path.alpha"] - 1.0) ** 2
        return TrialOutcome(value, [f"run{number}"])


def test_study_resumes_to_exact_total_with_enqueued_point_first(tmp_path: Path) -> None:
    spec = make_spec(enqueue=[{"path.c": 3.0, "path.alpha": 0.9}])
    first = Recorder()
    study = optimize(spec, tmp_path, "smoke", first, n_trials=3, progress=False)
    assert len(study.trials) == 3 and len(first.calls) == 3
    assert study.trials[0].params == {"path.c": 3.0, "path.alpha": 0.9}
    assert study.trials[0].user_attrs["source"] == "enqueue"
    assert study.trials[1].user_attrs["run_ids"] == ["run1"]
    assert (tmp_path / "path_search_test" / "smoke" / "optuna.db").is_file()

    second = Recorder()  # a new process would reopen the same SQLite file: same here
    study = optimize(spec, tmp_path, "smoke", second, progress=False)  # n_trials = 5 from the spec
    assert [n for n, _ in second.calls] == [
        3,
        4,
    ]  # only the missing trials, the enqueued point not again
    assert len(study.trials) == 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    again = Recorder()
    assert (
        len(optimize(spec, tmp_path, "smoke", again, progress=False).trials) == 5
        and not again.calls
    )


def test_tpe_seed_is_pinned(tmp_path: Path) -> None:
    spec = make_spec()
    runs = [
        optimize(spec, tmp_path / str(i), "smoke", Recorder(), progress=False) for i in range(2)
    ]
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]


def test_calibrated_point_is_enqueued_first(tmp_path: Path) -> None:
    import torch  # imported here: the grid test's spawned workers import this module

    from ursa.calibration import calibrate_metric_path

    emb = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))  # a small real codebook
    c, alpha = calibrate_metric_path(emb)
    spec = make_spec(enqueue_calibrated=True)
    study = optimize(
        spec,
        tmp_path,
        "smoke",
        Recorder(),
        n_trials=2,
        progress=False,
        calibrated=lambda: {"path.c": c, "path.alpha": alpha},
    )
    assert study.trials[0].params == {"path.c": c, "path.alpha": alpha}
    assert study.trials[0].user_attrs["source"] == "calibrated"


def test_failed_trial_is_recorded_and_counted(tmp_path: Path) -> None:
    rec = Recorder(fail_on={1})
    study = optimize(make_spec(n_trials=3), tmp_path, "smoke", rec, progress=False)
    states = [t.state for t in study.trials]
    assert len(states) == 3 and states[1] == optuna.trial.TrialState.FAIL
    assert study.trials[1].user_attrs["error"] == "RuntimeError: boom"


def test_stale_retried_and_surplus_trials_do_not_count(tmp_path: Path) -> None:
    study = open_study(make_spec(), tmp_path, "smoke")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    state = optuna.trial.TrialState
    study.add_trial(optuna.create_trial(state=state.FAIL, params={"x": 0.5}, distributions=dist))
    study.add_trial(
        optuna.create_trial(
            state=state.WAITING,
            params={"x": 0.5},
            distributions=dist,
            system_attrs={"failed_trial": 0, "retry_history": [0]},
        )
    )
    study.add_trial(
        optuna.create_trial(
            state=state.PRUNED, params={"x": 0.1}, distributions=dist, user_attrs={"surplus": True}
        )
    )
    assert [t.number for t in counted(study.trials)] == [1]


def grid_spec():
    return make_spec(
        sampler="grid",
        n_trials=10,
        params={
            "path.c": {"type": "float", "low": 1.0, "high": 3.0, "step": 1.0},
            "path.alpha": {"type": "categorical", "choices": [0.5, 1.0]},
        },
    )


def _grid_worker(spec: Any, root: str, n_trials: int | None) -> None:
    optimize(spec, root, "smoke", Recorder(), n_trials=n_trials, progress=False)


def test_grid_two_processes_never_repeat_a_point(tmp_path: Path) -> None:
    spec = (
        grid_spec()
    )  # validated here and pickled to the workers (validation imports the benchmark)
    assert grid_space(spec.search.params) == {"path.c": [1.0, 2.0, 3.0], "path.alpha": [0.5, 1.0]}
    ctx = mp.get_context("spawn")
    for n in (
        4,
        None,
    ):  # worker 1 runs 4 trials, worker 2 (a new process) the rest of the 6-point grid
        proc = ctx.Process(target=_grid_worker, args=(spec, str(tmp_path), n))
        proc.start()
        proc.join(120)
        assert proc.exitcode == 0
    study = open_study(grid_spec(), tmp_path, "smoke")
    points = [(t.params["path.c"], t.params["path.alpha"]) for t in study.trials]
    assert len(points) == 6 and len(set(points)) == 6  # budget capped at the grid size, no repeats


def test_bad_search_settings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a 'step' for a float parameter"):
        grid_space({"path.c": SearchParam(type="float", low=0.5, high=5.0)})
    with pytest.raises(ValueError, match="grid sampler runs every grid point itself"):
        optimize(
            make_spec(
                sampler="grid",
                enqueue=[{"path.c": 1.0}],
                params={"path.c": {"type": "float", "low": 1.0, "high": 3.0, "step": 1.0}},
            ),
            tmp_path,
            "smoke",
            Recorder(),
            progress=False,
        )
    with pytest.raises(ValueError, match="expected an RDB URL"):
        optimize(make_spec(), tmp_path, "smoke", Recorder(), storage="redis://x", progress=False)


def test_run_search_goes_through_the_run_store_and_reuses_a_repeated_point(
    tmp_path: Path, tmp_path_factory
) -> None:
    from harness_fixtures import (
        seeded_runs_root,
        tiny_spec,
    )  # the harness tests' seconds-sized spec

    from harness.search import run_search
    from harness.specfile import load_spec
    from harness.store import load_results, run_dir

    search = {
        "params": {
            "path.c": {"type": "float", "low": 0.5, "high": 5.0},
            "path.alpha": {"type": "float", "low": 0.3, "high": 2.0},
        },
        "n_trials": 2,
        "objective": "alignment",
        "enqueue": [{"path.c": 2.0, "path.alpha": 1.5}],
    }
    spec = load_spec(tiny_spec(tmp_path / "tiny.yaml", search=search))
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    results = run_search(spec, root, "default", progress=False)
    study = open_study(spec, root, "default")
    ids = [t.user_attrs["run_ids"][0] for t in study.trials]
    assert len(study.trials) == 2 and [r.run_id for r in results] == ids
    for trial, result in zip(study.trials, results):  # the trial's state follows its run's state
        assert (trial.state == optuna.trial.TrialState.COMPLETE) == result.done, result.error
        assert result.trial == trial.number
    assert set(ids) <= set(
        load_results(root, spec.name, "default")["run_id"]
    )  # the report sees the trials

    # the same point in a second study (another storage) is the same run: nothing is recomputed
    first = run_dir(root, spec.name, "default", ids[0]) / "result.json"
    stamp = first.stat().st_mtime_ns
    other = run_search(
        spec, root, "default", storage=f"sqlite:///{tmp_path / 'other.db'}", progress=False
    )
    assert other[0].run_id == ids[0] and first.stat().st_mtime_ns == stamp


def test_resuming_a_study_started_by_other_code_warns(tmp_path: Path) -> None:
    spec = make_spec(n_trials=1)
    study = optimize(spec, tmp_path, "smoke", Recorder(), progress=False)
    assert "commit" in study.user_attrs["code"]
    study.set_user_attr("code", {"package": "0.0", "commit": "0" * 40, "dirty": False})
    with pytest.warns(UserWarning, match="was started with code"):
        optimize(spec, tmp_path, "smoke", Recorder(), n_trials=2, progress=False)


def test_a_trial_records_its_seeds_and_standard_error(tmp_path: Path) -> None:
    """A noise-aware objective: the trial's value is the mean over seeds, and the per-seed values
    and their standard error are kept on the trial (the report's se column and paired tests)."""

    def objective(params: dict[str, Any], number: int) -> TrialOutcome:
        per_seed = {0: 0.2, 1: 0.4, 2: 0.3}
        return TrialOutcome(0.3, [f"run{number}"], seed_values=per_seed, se=0.0577)

    study = optimize(make_spec(), tmp_path, "smoke", objective, n_trials=2, progress=False)
    t = study.trials[0]
    assert t.value == 0.3 and t.user_attrs["se"] == 0.0577
    assert t.user_attrs["seed_values"] == {"0": 0.2, "1": 0.4, "2": 0.3}
