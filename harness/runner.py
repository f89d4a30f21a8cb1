"""Run a spec: expand -> ids -> run directories -> dispatch what is missing -> manifest.

A run whose result says done is never recomputed; failed runs are retried only with
`retry_failed`; `force` deletes and recomputes everything (its shared stages included); anything
else (absent, pending, running after a kill, cancelled) resumes from its on-disk stage state.
Runs that share a stage go out in waves: the first run of each shared train / sample stage
computes it, the runs that reuse it follow once it exists, so no worker waits on another's lock.

Several `harness run`s may share a runs root: a run another live process owns (harness.store
.acquire_run) is not dispatched again but waited for after this process's own runs, and taken
over if its owner stops before finishing it. Every run first reconciles the index of its
spec+profile with the result files and repairs what it finds damaged (an unreadable config.json
is rewritten from the plan, an unreadable result.json means "not done"). Ctrl-C stops the workers,
records every unfinished run as interrupted and raises `Interrupted`.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from harness.data import cache_dir, data_fingerprint
from harness.dispatch import dispatch
from harness.expand import apply_profile, arm_label, expand
from harness.identity import (
    DATA_SECTIONS,
    assign_ids,
    canonical_json,
    code_version,
    data_config,
    sha256_of,
    stage_code,
)
from harness.plugins import BENCHMARKS
from harness.process_guard import sigint_ignored
from harness.records import RunResult, RunSpec, RunState
from harness.spec import ExecutorConfig, RunConfig, Spec
from harness.stages import SHARED, link_shared_stages
from harness.store import (
    acquire_run,
    add_to_manifest,
    damaged_stages,
    owner_of,
    profile_dir,
    read_json_or_none,
    read_result,
    reconcile_index,
    record_result,
    run_dir,
    shared_stage_dir,
    stage_busy,
    stage_done,
    sweep_temps,
    wait_for_owner,
    warn,
    write_manifest,
    write_result,
)
from harness.worker import RunTask
from ursa.io import atomic_write_json


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during `execute_runs`: the workers were stopped and `unfinished` (each recorded as
    interrupted, resumable by the next run) lists the runs that had not finished."""

    def __init__(self, unfinished: list[RunResult]) -> None:
        super().__init__(f"{len(unfinished)} run(s) not finished")
        self.unfinished = unfinished


@dataclass
class Outcome:
    """What `execute_runs` did: final results in run order, and how many were (re)computed."""

    results: list[RunResult]
    computed: int

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if not r.done]


def reference_data_sets(spec: Spec, profile: str) -> list[tuple[dict, RunConfig]]:
    """(axis values, run config) of each data set the spec's arms use, in arm order: the values
    of the axes that choose it ({} where every arm uses the profile's base data set)."""
    from harness.expand import make_run

    resolved, base = apply_profile(spec, profile)
    points: dict[str, tuple[dict, RunConfig]] = {}  # reference payload -> (axis values, config)
    for run in expand(spec, profile):
        chosen = {
            k: v
            for k, v in run.params.items()
            if k.split(".")[0] in DATA_SECTIONS + ("score",) or k == "sample.tasks"
        }
        config = make_run(resolved, profile, base, chosen, resolved.seeds[0]).config
        points.setdefault(canonical_json(_reference_payload(config)), (chosen, config))
    return list(points.values())


def reference_runs(spec: Spec, profile: str, runs_root: str | Path) -> list[RunSpec]:
    """One run per reference generator of the benchmark for each data set the spec's arms use
    (e.g. each clip length): a reference row scores that data set's clips, so a floor or
    ceiling is read against the arms trained on it. Where the arms use several data sets, a
    reference row carries the values of the axes that choose its data set (`params`, the
    `param.*` columns of results.csv) and names them in its label."""
    sets = reference_data_sets(spec, profile)
    runs = []
    for chosen, config in sets:
        suffix = f", {arm_label(chosen)}" if len(sets) > 1 and chosen else ""
        for name in BENCHMARKS.get(config.benchmark.name).references:
            run = RunSpec(
                spec=spec.name,
                profile=profile,
                arm=f"ref:{name}{suffix}",
                seed=config.score.seed,
                params=chosen,
                config=config,
                reference=name,
            )
            data = data_config(config)
            payload = {
                "reference": name,
                **_reference_payload(config),
                "code": _reference_code(config),
                "data": data_fingerprint(runs_root)(data),
            }
            run.run_id = sha256_of(payload)[:16]
            runs.append(run)
    return runs


def _reference_code(config: RunConfig) -> dict:
    """The code versions a reference row runs: the data's, the stage runner's and the scorers'."""
    code = stage_code(config)
    return {"data": code["data"], "stages": code["train"]["stages"], "score": code["score"]}


def _reference_payload(config: RunConfig) -> dict:
    """What a reference row's result depends on besides its generator and the code."""
    return {
        **data_config(config),
        "score": config.score.model_dump(mode="json"),
        "tasks": config.sample.tasks,
    }


def plan(spec: Spec, profile: str, runs_root: str | Path, references: bool = True) -> list[RunSpec]:
    """Every run of spec+profile with its ids (grid x zip x seeds, then reference rows)."""
    runs = assign_ids(expand(spec, profile), data_fingerprint(runs_root))
    return runs + (reference_runs(spec, profile, runs_root) if references else [])


def _head(run: RunSpec) -> RunResult:
    return RunResult(
        run_id=run.run_id,
        spec=run.spec,
        profile=run.profile,
        arm=run.arm,
        seed=run.seed,
        params=dict(run.params),
        reference=run.reference,
        stage_ids=dict(run.stage_ids),
        trial=run.extra.get("trial"),
    )


def check_runs_root(
    runs_root: str | Path, spec: str | None = None, profile: str | None = None
) -> Path:
    """The runs root as a Path; ValueError when it exists and is not a directory, or when a folder
    a run of spec+profile writes to (<spec>/<profile>, _stages, _cache) is a symlink out of the
    root."""
    root = Path(runs_root)
    if root.exists() and not root.is_dir():
        raise ValueError(
            f"--runs-root {str(root)!r}: expected a directory (or a path to create one at), got a file"
        )
    inside = root.resolve()
    written = [Path(spec), Path(spec) / profile, Path("_stages"), Path("_cache")]
    for rel in written if spec and profile else []:
        target = (root / rel).resolve()
        if not target.is_relative_to(inside):
            raise ValueError(
                f"{root / rel}: expected a folder inside the runs root {str(root)!r}, "
                f"got a symlink to {target} outside it; remove the link (runs write only "
                f"under their runs root)"
            )
    return root


def submitit_folder(
    runs_root: str | Path, executor: ExecutorConfig, spec: str, profile: str
) -> Path:
    """submitit's job folder: `executor.folder` under the runs root (default <spec>/<profile>/_submitit);
    ValueError when it is absolute or leaves the runs root ('..', '~', a symlink out)."""
    root = Path(runs_root)
    if executor.folder is None:
        return root / spec / profile / "_submitit"
    rel = Path(executor.folder)
    escapes = (
        not str(executor.folder).strip()
        or rel.is_absolute()
        or ".." in rel.parts
        or (rel.parts and rel.parts[0].startswith("~"))
    )
    if not escapes:
        try:
            escapes = not (root / rel).resolve().is_relative_to(root.resolve())
        except (OSError, RuntimeError):
            escapes = True
    if escapes:
        raise ValueError(
            f"executor.folder: expected a path relative to the runs root {str(root)!r} that stays inside "
            f"it (no leading '/', '~' or '..', no symlink out of it), e.g. 'jobs' or "
            f"'{spec}/{profile}/_submitit'; got {executor.folder!r}"
        )
    return root / rel


def _config_meta(run: RunSpec, runs_root: Path) -> dict:
    return {
        "run": _head(run).to_json(),
        "config": run.config.model_dump(mode="json"),
        "code": code_version(),
        "data": data_fingerprint(runs_root)(data_config(run.config)),
    }  # as in the ids


def prepare_run_dir(run: RunSpec, runs_root: str | Path, force: bool = False) -> Path:
    """Create the run directory with config.json (written once: the id is the content hash; an
    unreadable or foreign one is rewritten from the plan) and links to its shared stages; a missing
    or unreadable result.json becomes a pending one. `force` deletes the run and its shared stages
    first (ValueError if a live process owns the run or computes one of those stages)."""
    runs_root = Path(runs_root)
    rdir = run_dir(runs_root, run.spec, run.profile, run.run_id)
    if force:
        owner = owner_of(rdir)
        shared = [
            shared_stage_dir(runs_root, s, run.stage_ids[s]) for s in SHARED if s in run.stage_ids
        ]
        busy = next((d for d in shared if stage_busy(d)), None)
        if owner is not None or busy is not None:
            raise ValueError(
                f"--force: run {run.run_id} ({run.arm}, seed {run.seed}) is being computed "
                f"{f'by {owner}' if owner else f'(stage {busy})'}; expected no live process on the "
                f"runs it deletes (wait for it, or stop it first)"
            )
        shutil.rmtree(rdir, ignore_errors=True)
        for d in shared:
            shutil.rmtree(d, ignore_errors=True)
    cfg = rdir / "config.json"
    if cfg.exists() or cfg.is_symlink():
        meta = read_json_or_none(cfg, "rewritten from the plan (it is content-addressed)")
        ok = isinstance(meta, dict) and isinstance(meta.get("run"), dict) and "config" in meta
        if meta is not None and not (ok and meta["run"].get("run_id") == run.run_id):
            warn(f"{cfg}: not the config of run {run.run_id}; rewritten from the plan")
        if not (ok and meta["run"].get("run_id") == run.run_id):
            atomic_write_json(cfg, _config_meta(run, runs_root))
    else:
        atomic_write_json(cfg, _config_meta(run, runs_root))
    link_shared_stages(runs_root, rdir, run.stage_ids)
    if read_result(rdir) is None:
        write_result(runs_root, rdir, _head(run))
    return rdir


def _waves(todo: list[tuple[int, RunSpec, Path]]) -> list[list[tuple[int, RunSpec, Path]]]:
    """Split runs so that each not-yet-computed shared stage has exactly one run computing it per wave."""
    waves, rest = [], list(todo)
    while rest:
        wave, later, claimed = [], [], set()
        for item in rest:
            _, run, rdir = item
            key = next(
                (
                    (s, run.stage_ids[s])
                    for s in SHARED
                    if s in run.stage_ids and not stage_done(rdir, s)
                ),
                None,
            )
            (later if key is not None and key in claimed else wave).append(item)
            claimed.add(key)
        waves.append(wave)
        rest = later
    return waves


def _record_interrupted(
    todo: list[tuple[int, RunSpec, Path, float | None]],
    results: list[RunResult | None],
    runs_root: Path,
) -> list[RunResult]:
    """After Ctrl-C (workers stopped): every run of `todo` without a final result is recorded as
    interrupted, unless another live process owns it (that process goes on with it)."""
    unfinished = []
    for i, run, rdir, _ in todo:
        current = read_result(rdir)
        if current is not None and current.state.final:
            results[i] = current
            continue
        hold = acquire_run(rdir, wait=False)
        if hold is None:
            continue
        with hold:
            current = read_result(rdir) or _head(run)
            if current.state != RunState.INTERRUPTED:
                current.fail(
                    RunState.INTERRUPTED,
                    "interrupted (Ctrl-C) before it finished; the next `harness run` resumes it",
                )
                record_result(runs_root, rdir, current)
        results[i] = current
        unfinished.append(current)
    return unfinished


def execute_runs(
    runs: list[RunSpec],
    runs_root: str | Path,
    executor: ExecutorConfig,
    *,
    max_parallel: int | None = None,
    retry_failed: bool = False,
    force: bool = False,
    progress: bool = True,
) -> Outcome:
    """Dispatch the runs that are not finished; returns every run's final result (in order).

    A run whose directory cannot be written (disk full) fails alone; a run another live process
    owns is waited for once this process's own runs are done."""
    runs_root = Path(runs_root)
    # submitit's job folder: must be on a filesystem the compute nodes share (SLURM)
    folder = (
        submitit_folder(runs_root, executor, runs[0].spec, runs[0].profile) if runs else runs_root
    )
    todo: list[tuple[int, RunSpec, Path, float | None]] = []
    results: list[RunResult | None] = [None] * len(runs)
    for i, run in enumerate(runs):
        try:
            rdir = prepare_run_dir(run, runs_root, force=force)
        except OSError as exc:  # its directory cannot be written: this run fails, the others go on
            rdir = run_dir(runs_root, run.spec, run.profile, run.run_id)
            results[i] = _head(run).fail(
                RunState.FAILED,
                f"could not prepare its run directory {rdir}: {type(exc).__name__}: {exc}",
            )
            record_result(runs_root, rdir, results[i])
            continue
        result = read_result(rdir)
        if result is not None and result.arm != run.arm and owner_of(rdir) is None:
            result.arm = run.arm  # the spec renamed the arm (`labels:`): the same run, renamed
            write_result(runs_root, rdir, result)
        if result is not None and result.done and owner_of(rdir) is None:
            damaged = damaged_stages(rdir, run.reference is not None)
            if damaged:  # a finished run whose outputs changed since: recomputed, never trusted
                warn(
                    f"run {run.run_id} ({run.arm}, seed {run.seed}): finished, but its stage(s) "
                    f"{', '.join(damaged)} are damaged or missing; recomputing them"
                )
                result = _head(run)
                write_result(runs_root, rdir, result)
        if result is not None and (
            result.done or (result.state == RunState.FAILED and not retry_failed)
        ):
            results[i] = result
            continue
        todo.append(
            (
                i,
                run,
                rdir,
                result.finished if result is not None and result.state == RunState.FAILED else None,
            )
        )
    computed = len(todo)
    failed_stage: dict[tuple[str, str], RunResult] = {}
    announced: set[int] = set()
    pending = list(todo)
    try:
        while pending:
            deferred = []
            for wave in _waves([(i, run, rdir) for i, run, rdir, _ in pending]):
                go = []
                seen = {i: f for i, _, _, f in pending}
                for i, run, rdir in wave:
                    blocker = next(
                        (
                            failed_stage[(s, run.stage_ids[s])]
                            for s in SHARED
                            if (s, run.stage_ids.get(s)) in failed_stage and not stage_done(rdir, s)
                        ),
                        None,
                    )
                    if blocker is not None:
                        msg = (
                            f"shares its stages with run {blocker.run_id} ({blocker.arm}, seed {blocker.seed}), "
                            f"which failed: {(blocker.error or {}).get('message', '')}"
                        )
                        results[i] = _head(run).fail(RunState.FAILED, msg)
                        record_result(runs_root, rdir, results[i])
                        continue
                    owner = owner_of(rdir)
                    if owner is not None:  # another process is computing it: not twice
                        if i not in announced:
                            warn(
                                f"run {run.run_id} ({run.arm}, seed {run.seed}): owned by {owner}; waiting for it"
                            )
                            announced.add(i)
                        deferred.append((i, run, rdir, seen[i]))
                        continue
                    go.append((i, run, rdir))
                tasks = [
                    RunTask(runs_root, rdir, head=_head(run).to_json(), seen_finished=seen[i])
                    for i, run, rdir in go
                ]
                overall = (sum(results[i] is not None for i, *_ in todo), computed)  # all waves
                finished = (
                    dispatch(
                        tasks,
                        executor,
                        folder,
                        max_parallel=max_parallel,
                        progress=progress,
                        overall=overall,
                    )
                    if tasks
                    else []
                )
                for (i, run, rdir), res in zip(go, finished):
                    results[i] = res
                    if not res.done:
                        for s in SHARED:
                            if s in run.stage_ids and not stage_done(rdir, s):
                                failed_stage[(s, run.stage_ids[s])] = res
            pending = []
            for i, run, rdir, seen_finished in deferred:
                wait_for_owner(rdir)
                res = read_result(rdir)
                if res is not None and res.state.final:
                    results[i] = res
                else:  # its owner stopped before finishing it: this process takes it over
                    pending.append((i, run, rdir, seen_finished))
    except KeyboardInterrupt:
        with sigint_ignored():
            unfinished = _record_interrupted(todo, results, runs_root)
        raise Interrupted(unfinished) from None
    return Outcome([r or _head(run) for r, run in zip(results, runs)], computed=computed)


def run_spec(
    spec: Spec,
    profile: str,
    runs_root: str | Path,
    *,
    executor_kind: str | None = None,
    max_parallel: int | None = None,
    retry_failed: bool = False,
    force: bool = False,
    progress: bool = True,
) -> Outcome:
    """Plan, record the manifest, reconcile the index, and execute every grid / reference run of spec+profile."""
    runs_root = check_runs_root(runs_root, spec.name, profile)
    resolved, _ = apply_profile(spec, profile)
    executor = resolved.executor.model_copy(update={"kind": executor_kind} if executor_kind else {})
    submitit_folder(
        runs_root, executor, spec.name, profile
    )  # a bad folder is an error before any compute
    runs = plan(spec, profile, runs_root)
    write_manifest(runs_root, spec.name, profile, [r.run_id for r in runs], spec.source)
    for directory in (profile_dir(runs_root, spec.name, profile), cache_dir(runs_root) / "data"):
        if (
            directory.is_dir()
        ):  # temp files of killed writers outside run directories (manifest, data cache)
            sweep_temps(directory, locked=False, recursive=directory.name == "data")
    _reconcile(runs_root, spec.name, profile)

    # one `run` of a spec+profile dispatches at a time: a second one started meanwhile waits
    # here, in its parent, then finds the runs done, instead of spawning idle workers
    def on_wait(owner: object) -> None:
        warn(
            f"{spec.name}/{profile}: another `harness run` ({owner}) is running these runs; "
            f"waiting for it, then running what is left"
        )

    with acquire_run(profile_dir(runs_root, spec.name, profile), on_wait=on_wait):
        outcome = execute_runs(
            runs,
            runs_root,
            executor,
            max_parallel=max_parallel,
            retry_failed=retry_failed,
            force=force,
            progress=progress,
        )
    _reconcile(runs_root, spec.name, profile)
    return outcome


def _reconcile(runs_root: Path, spec: str, profile: str) -> None:
    """reconcile_index; an index that cannot be written is reported (result.json stays the truth)."""
    try:
        reconcile_index(runs_root, spec, profile)
    except (sqlite3.Error, OSError) as exc:
        warn(
            f"{runs_root / 'index.sqlite'}: could not reconcile {spec}/{profile} ({exc}); "
            f"`python -m harness reindex --runs-root {runs_root}` rebuilds it"
        )


def register_runs(runs: list[RunSpec], runs_root: str | Path, source: str) -> None:
    """Add runs made outside the grid (search trials) to their spec+profile manifest."""
    if runs:
        add_to_manifest(runs_root, runs[0].spec, runs[0].profile, [r.run_id for r in runs], source)
