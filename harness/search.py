"""`search:` blocks: an Optuna study whose trials are harness runs.

- Storage: RDB, `sqlite:///<runs_root>/<spec>/<profile>/optuna.db` by default (one writer at a
  time), or `--storage postgresql://...` for several workers; `load_if_exists` resumes.
  Heartbeats mark the trial of a killed worker stale (after a 120 s grace period) and re-queue
  its point.
- Sampler: TPE (default), random or grid, seeded with `sampler_seed`. GridSampler gives trial
  number i grid point i, so workers sharing a study never run one point twice.
- Fixed points (`enqueue`, and the calibrated (c, alpha) of `ursa.calibration.calibrate_metric_path`
  on the spec's tokenizer) are enqueued once, so on a new study they are trials 0, 1, ...
- Budget: exactly `n_trials` trials in total (at most the grid size for the grid sampler),
  across resumes and workers. A trial counts unless
  it was re-queued after going stale or is a surplus trial started in a race at the end
  (marked with user attr `surplus` and pruned).
- Objective: `objective(params, trial_number) -> TrialOutcome` (`optimize`); `run_search` uses
  `harness_objective`, which runs the point through the harness's run-id machinery, so a
  repeated point reuses its cached runs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from harness import stats
from harness.records import RunResult
from harness.spec import ExecutorConfig, SearchConfig, SearchParam, Spec


@dataclass
class TrialOutcome:
    """Objective value of one point (None when its runs failed), the runs behind it, the error."""

    value: float | None
    run_ids: list[str] = field(default_factory=list)
    error: str | None = None
    seed_values: dict[int, float] = field(default_factory=dict)  # the objective metric per seed
    se: float | None = None  # standard error of `value` over those seeds (seed-level t)


Objective = Callable[[dict[str, Any], int], TrialOutcome]


def default_storage(runs_root: str | Path, spec_name: str, profile: str) -> str:
    path = Path(runs_root).resolve() / spec_name / profile / "optuna.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def study_name(spec: Spec, profile: str) -> str:
    return (
        spec.search.study_name
        if spec.search and spec.search.study_name
        else f"{spec.name}.{profile}"
    )


def make_storage(
    url: str, heartbeat_interval: int = 30, grace_period: int = 120
) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats; a stale trial (its worker died) is re-queued up to 3 times."""
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise ValueError(
            f"storage: expected an RDB URL (sqlite:///FILE or postgresql://...), got {url!r}"
        )
    with warnings.catch_warnings():  # heartbeats are flagged experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=retry,
        )


def grid_space(params: dict[str, SearchParam]) -> dict[str, list[Any]]:
    """The finite grid of each parameter (floats need a `step`)."""
    space: dict[str, list[Any]] = {}
    for name, p in params.items():
        if p.type == "categorical":
            space[name] = list(p.choices or [])
        elif p.step is None and p.type == "float":
            raise ValueError(
                f"search.params.{name}: the grid sampler needs a 'step' for a float parameter, got none"
            )
        else:
            step = p.step or 1
            count = int(math.floor((p.high - p.low) / step + 1e-9)) + 1
            values = [p.low + i * step for i in range(count)]
            space[name] = (
                [int(v) for v in values] if p.type == "int" else [round(v, 12) for v in values]
            )
    return space


def make_sampler(search: SearchConfig) -> optuna.samplers.BaseSampler:
    if search.sampler == "grid":
        return optuna.samplers.GridSampler(grid_space(search.params), seed=search.sampler_seed)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=search.sampler_seed)
    return optuna.samplers.TPESampler(seed=search.sampler_seed)


def suggest(trial: optuna.Trial, name: str, p: SearchParam) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(name, p.choices)
    if p.type == "int":
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that use up the budget: all but surplus ones and stale ones that were re-queued."""
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return [t for t in trials if t.number not in retried and not t.user_attrs.get("surplus")]


def started(study: optuna.Study) -> list[FrozenTrial]:
    """Counted trials that a worker has taken up (queued WAITING ones are still to run)."""
    return [t for t in counted(study.get_trials(deepcopy=False)) if t.state != TrialState.WAITING]


def budget(search: SearchConfig) -> int:
    """n_trials, capped at the grid size for the grid sampler (each point once)."""
    if search.sampler != "grid":
        return search.n_trials
    return min(search.n_trials, math.prod(len(v) for v in grid_space(search.params).values()))


def open_study(
    spec: Spec, runs_root: str | Path, profile: str, storage: str | None = None
) -> optuna.Study:
    """Create or resume the spec's study (sampler, direction and storage from its search block)."""
    if spec.search is None:
        raise ValueError(f"{spec.source}: search: expected a search block to run a study, got none")
    url = storage or spec.search.storage or default_storage(runs_root, spec.name, profile)
    return optuna.create_study(
        storage=make_storage(url),
        study_name=study_name(spec, profile),
        sampler=make_sampler(spec.search),
        direction=spec.search.direction,
        load_if_exists=True,
    )


def _note_code_version(study: optuna.Study) -> None:
    """Record the code version on a new study; warn when a resumed one was started by other code
    (its earlier trials' runs then have ids of that code version)."""
    from harness.identity import code_version

    now = code_version()
    before = study.user_attrs.get("code")
    if before is None:
        study.set_user_attr("code", now)
    elif before != now:
        warnings.warn(
            f"study {study.study_name!r} was started with code {before}, resumed with {now}; "
            "use a new study_name or --storage to start afresh",
            stacklevel=3,
        )


def load_existing_study(
    spec: Spec, runs_root: str | Path, profile: str, storage: str | None = None
) -> optuna.Study | None:
    """The spec's study if its storage already holds it (never creates a database)."""
    if spec.search is None:
        return None
    url = storage or spec.search.storage
    if url is None:
        path = Path(runs_root).resolve() / spec.name / profile / "optuna.db"
        if not path.is_file():
            return None
        url = f"sqlite:///{path}"
    try:
        return optuna.load_study(
            study_name=study_name(spec, profile), storage=url, sampler=make_sampler(spec.search)
        )
    except KeyError:
        return None


def enqueue_fixed(study: optuna.Study, points: list[tuple[dict[str, Any], str]]) -> None:
    """Enqueue each (params, source) once: skipped when a trial with those params already exists."""
    for params, source in points:
        study.enqueue_trial(params, user_attrs={"source": source}, skip_if_exists=True)


def fixed_points(
    spec: Spec, calibrated: Callable[[], dict[str, float]] | None
) -> list[tuple[dict[str, Any], str]]:
    """The spec's `enqueue` points, then the calibrated (c, alpha) if `enqueue_calibrated`."""
    search = spec.search
    points = [(dict(p), "enqueue") for p in search.enqueue]
    if search.enqueue_calibrated:
        if not {"path.c", "path.alpha"} <= set(search.params):
            raise ValueError(
                f"{spec.source}: search.enqueue_calibrated: expected search params path.c and "
                f"path.alpha, got {sorted(search.params)}"
            )
        if calibrated is None:
            raise ValueError(
                "run_search: enqueue_calibrated needs a `calibrated` point provider, got None"
            )
        points.append((calibrated(), "calibrated"))
    if points and search.sampler == "grid":
        raise ValueError(
            f"{spec.source}: search.enqueue: the grid sampler runs every grid point itself; "
            "expected no enqueued points with sampler: grid"
        )
    return points


def optimize(
    spec: Spec,
    runs_root: str | Path,
    profile: str,
    objective: Objective,
    *,
    storage: str | None = None,
    n_trials: int | None = None,
    calibrated: Callable[[], dict[str, float]] | None = None,
    progress: bool = True,
) -> optuna.Study:
    """Run the spec's study until it holds `n_trials` (default: the budget) counted trials.

    `calibrated` (for enqueue_calibrated) defaults to the calibrated (c, alpha) of the spec's tokenizer.
    """
    if spec.search is None:
        raise ValueError(f"{spec.source}: search: expected a search block, got none")
    from harness.expand import apply_profile

    resolved = apply_profile(spec, profile)[0] if profile in spec.profiles else spec
    search = resolved.search
    target = n_trials if n_trials is not None else budget(search)
    if target < 1:
        raise ValueError(f"n_trials: expected an integer >= 1, got {target!r}")
    if calibrated is None and search.enqueue_calibrated:
        calibrated = lambda: calibrated_point(spec, runs_root, profile)  # noqa: E731
    points = fixed_points(resolved, calibrated)
    study = open_study(resolved, runs_root, profile, storage)
    if not study.trials:
        enqueue_fixed(study, points)
    _note_code_version(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(
            study
        )  # a killed worker's trial, once its heartbeat is stale
    done = len(started(study))
    if done >= target:
        return study
    bar = tqdm(
        total=target, initial=done, desc=f"search {spec.name}", unit="trial", disable=not progress
    )

    def trial_fn(trial: optuna.Trial) -> float:
        # lower-numbered trials have precedence (a queued one will be run by someone)
        ahead = [t for t in counted(study.get_trials(deepcopy=False)) if t.number < trial.number]
        if len(ahead) >= target:  # other workers took the last slots between our check and ask
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("budget reached by other workers")
        params = {name: suggest(trial, name, p) for name, p in search.params.items()}
        outcome = objective(params, trial.number)
        trial.set_user_attr("run_ids", outcome.run_ids)
        if outcome.seed_values:  # the noise behind the value: its seeds and standard error
            trial.set_user_attr("seed_values", {str(k): v for k, v in outcome.seed_values.items()})
            trial.set_user_attr("se", outcome.se)
        if outcome.value is None or not math.isfinite(outcome.value):
            trial.set_user_attr(
                "error", outcome.error or f"objective {search.objective} is {outcome.value!r}"
            )
            return (
                math.nan
            )  # Optuna records a NaN objective as a FAIL trial (one log line, no traceback)
        return float(outcome.value)

    def stop_at_budget(study: optuna.Study, trial: FrozenTrial) -> None:
        count = len(started(study))
        bar.n = min(count, target)
        bar.refresh()
        if count >= target:
            study.stop()

    try:
        study.optimize(trial_fn, callbacks=[stop_at_budget], gc_after_trial=False)
    finally:
        bar.close()
    return study


# ----------------------------------------------------------------------------- harness wiring


def calibrated_point(spec: Spec, runs_root: str | Path, profile: str) -> dict[str, float]:
    """{"path.c", "path.alpha"} from calibrate_metric_path on the codebook of the spec's tokenizer."""
    from harness.data import data_for
    from harness.expand import apply_profile, make_run
    from ursa.calibration import calibrate_metric_path

    spec_p, base = apply_profile(spec, profile)
    run = make_run(spec_p, profile, base, {}, spec_p.seeds[0])
    emb = data_for(run.config, runs_root).tokenizer.codebook_embeddings().float()
    c, alpha = calibrate_metric_path(emb)
    return {"path.c": c, "path.alpha": alpha}


def harness_objective(
    spec: Spec,
    runs_root: str | Path,
    profile: str,
    executor: ExecutorConfig,
    *,
    max_parallel: int | None = None,
    retry_failed: bool = False,
    progress: bool = False,
) -> Objective:
    """Objective running one point, for every seed of the spec, as harness runs (cached by run id);
    the value is the mean of the objective metric over seeds, recorded with each seed's value and
    the mean's seed-level standard error (a noise-aware objective: a trial is a few seeds, not one
    draw)."""
    from harness.data import data_fingerprint
    from harness.expand import apply_profile, make_run
    from harness.identity import assign_ids
    from harness.runner import execute_runs, register_runs

    resolved, base = apply_profile(spec, profile)
    metric = resolved.search.objective

    def objective(params: dict[str, Any], number: int) -> TrialOutcome:
        runs = [make_run(resolved, profile, base, params, seed) for seed in resolved.seeds]
        for run in runs:
            run.extra["trial"] = number
        assign_ids(runs, data_fingerprint(runs_root))
        register_runs(runs, runs_root, spec.source)
        results = execute_runs(
            runs,
            runs_root,
            executor,
            max_parallel=max_parallel,
            retry_failed=retry_failed,
            progress=progress,
        ).results
        ids = [r.run_id for r in runs]
        failed = [r for r in results if not r.done]
        if failed:
            return TrialOutcome(
                None, ids, f"{len(failed)} run(s) failed: {(failed[0].error or {}).get('message')}"
            )
        values = [r.metrics.get(metric) for r in results]
        if any(v is None for v in values):
            return TrialOutcome(
                None,
                ids,
                f"objective metric {metric!r} missing from the results "
                f"(metrics: {sorted(results[0].metrics)})",
            )
        per_seed = {r.seed: float(v) for r, v in zip(results, values)}
        mean = stats.seed_level(list(per_seed.values()))
        return TrialOutcome(
            mean.mean, ids, seed_values=per_seed, se=mean.se if math.isfinite(mean.se) else None
        )

    return objective


def run_search(
    spec: Spec,
    runs_root: str | Path,
    profile: str,
    storage: str | None = None,
    executor: ExecutorConfig | None = None,
    *,
    max_parallel: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> list[RunResult]:
    """Run the spec's search through the harness; returns the result of every run of every counted trial."""
    from harness.expand import apply_profile
    from harness.runner import check_runs_root
    from harness.store import add_to_manifest, read_result, run_dir

    check_runs_root(runs_root, spec.name, profile)
    executor = executor or apply_profile(spec, profile)[0].executor
    objective = harness_objective(
        spec,
        runs_root,
        profile,
        executor,
        max_parallel=max_parallel,
        retry_failed=retry_failed,
        progress=progress and executor.kind == "inprocess",
    )
    study = optimize(spec, runs_root, profile, objective, storage=storage, progress=progress)
    ids = list(
        dict.fromkeys(
            i
            for t in counted(study.get_trials(deepcopy=False))
            for i in t.user_attrs.get("run_ids", [])
        )
    )
    add_to_manifest(
        runs_root, spec.name, profile, ids, spec.source
    )  # `run` rewrites the manifest; trials stay in it
    results = [read_result(run_dir(runs_root, spec.name, profile, i)) for i in ids]
    return [r for r in results if r is not None]
