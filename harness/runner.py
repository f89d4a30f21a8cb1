"""Run a spec: expand -> ids -> run directories -> dispatch what is missing -> manifest.

A run whose result says done is never recomputed; failed runs are retried only with
`retry_failed`; `force` deletes and recomputes everything (its shared stages included); anything
else (absent, pending, running after a kill, cancelled) resumes from its on-disk stage state.
Runs that share a stage go out in waves: the first run of each shared train / sample stage
computes it, the runs that reuse it follow once it exists, so no worker waits on another's lock.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.data import data_fingerprint
from harness.dispatch import RunTask, dispatch
from harness.expand import RunSpec, apply_profile, expand
from harness.identity import assign_ids, code_version, data_config, sha256_of
from harness.plugins import BENCHMARKS
from harness.records import RunResult, RunState
from harness.spec import ExecutorConfig, Spec
from harness.stages import SHARED, link_shared_stages
from harness.store import (add_to_manifest, read_result, run_dir, shared_stage_dir, stage_done, write_manifest,
                           write_result)
from ursa.io import atomic_write_json


@dataclass
class Outcome:
    """What `execute_runs` did: final results in run order, and how many were (re)computed."""

    results: list[RunResult]
    computed: int

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if not r.done]


def reference_runs(spec: Spec, profile: str, runs_root: str | Path) -> list[RunSpec]:
    """One run per reference generator of the benchmark, on the profile's base data config."""
    from harness.expand import make_run

    resolved, base = apply_profile(spec, profile)
    config = make_run(resolved, profile, base, {}, resolved.seeds[0]).config
    runs = []
    for name in BENCHMARKS.get(config.benchmark.name).references:
        run = RunSpec(spec=spec.name, profile=profile, arm=f"ref:{name}", seed=config.score.seed, params={},
                      config=config, reference=name)
        data = data_config(config)
        payload = {"reference": name, **data, "score": config.score.model_dump(mode="json"),
                   "tasks": config.sample.tasks,
                   "code": {k: v for k, v in code_version().items() if k != "commit"},
                   "data": data_fingerprint(runs_root)(data)}
        run.run_id = sha256_of(payload)[:16]
        runs.append(run)
    return runs


def plan(spec: Spec, profile: str, runs_root: str | Path, references: bool = True) -> list[RunSpec]:
    """Every run of spec+profile with its ids (grid x zip x seeds, then reference rows)."""
    runs = assign_ids(expand(spec, profile), data_fingerprint(runs_root))
    return runs + (reference_runs(spec, profile, runs_root) if references else [])


def _head(run: RunSpec) -> RunResult:
    return RunResult(run_id=run.run_id, spec=run.spec, profile=run.profile, arm=run.arm, seed=run.seed,
                     params=dict(run.params), reference=run.reference, stage_ids=dict(run.stage_ids),
                     trial=run.extra.get("trial"))


def prepare_run_dir(run: RunSpec, runs_root: str | Path, force: bool = False) -> Path:
    """Create the run directory with config.json (written once: the id is the content hash) and
    links to its shared stages."""
    runs_root = Path(runs_root)
    rdir = run_dir(runs_root, run.spec, run.profile, run.run_id)
    if force:
        shutil.rmtree(rdir, ignore_errors=True)
        for stage in SHARED:
            if stage in run.stage_ids:
                shutil.rmtree(shared_stage_dir(runs_root, stage, run.stage_ids[stage]), ignore_errors=True)
    if not (rdir / "config.json").exists():
        meta = {"run": _head(run).to_json(), "config": run.config.model_dump(mode="json"), "code": code_version(),
                "data": data_fingerprint(runs_root)(data_config(run.config))}  # as in the ids
        atomic_write_json(rdir / "config.json", meta)
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
            key = next(((s, run.stage_ids[s]) for s in SHARED if s in run.stage_ids and not stage_done(rdir, s)), None)
            (later if key is not None and key in claimed else wave).append(item)
            claimed.add(key)
        waves.append(wave)
        rest = later
    return waves


def execute_runs(runs: list[RunSpec], runs_root: str | Path, executor: ExecutorConfig, *,
                 max_parallel: int | None = None, retry_failed: bool = False, force: bool = False,
                 progress: bool = True) -> Outcome:
    """Dispatch the runs that are not finished; returns every run's final result (in order)."""
    runs_root = Path(runs_root)
    todo: list[tuple[int, RunSpec, Path]] = []
    results: list[RunResult | None] = []
    for i, run in enumerate(runs):
        rdir = prepare_run_dir(run, runs_root, force=force)
        result = read_result(rdir)
        if result is not None and (result.done or (result.state == RunState.FAILED and not retry_failed)):
            results.append(result)
            continue
        results.append(None)
        todo.append((i, run, rdir))
    # submitit's job folder: must be on a filesystem the compute nodes share (SLURM)
    folder = runs_root / (executor.folder or Path(runs[0].spec) / runs[0].profile / "_submitit") if runs else runs_root
    failed_stage: dict[tuple[str, str], RunResult] = {}
    for wave in _waves(todo):
        go = []
        for i, run, rdir in wave:
            blocker = next((failed_stage[(s, run.stage_ids[s])] for s in SHARED if (s, run.stage_ids.get(s)) in
                            failed_stage and not stage_done(rdir, s)), None)
            if blocker is None:
                go.append((i, run, rdir))
                continue
            msg = (f"shares its stages with run {blocker.run_id} ({blocker.arm}, seed {blocker.seed}), which failed: "
                   f"{(blocker.error or {}).get('message', '')}")
            results[i] = _head(run).fail(RunState.FAILED, msg)
            write_result(runs_root, rdir, results[i])
        tasks = [RunTask(runs_root, rdir, progress=progress and executor.kind == "inprocess") for _, _, rdir in go]
        for (i, run, rdir), res in zip(go, dispatch(tasks, executor, folder, max_parallel=max_parallel,
                                                    progress=progress) if tasks else []):
            results[i] = res
            if not res.done:
                for s in SHARED:
                    if s in run.stage_ids and not stage_done(rdir, s):
                        failed_stage[(s, run.stage_ids[s])] = res
    return Outcome([r or _head(run) for r, run in zip(results, runs)], computed=len(todo))


def run_spec(spec: Spec, profile: str, runs_root: str | Path, *, executor_kind: str | None = None,
             max_parallel: int | None = None, retry_failed: bool = False, force: bool = False,
             progress: bool = True) -> Outcome:
    """Plan, record the manifest, and execute every grid / reference run of spec+profile."""
    resolved, _ = apply_profile(spec, profile)
    executor = resolved.executor.model_copy(update={"kind": executor_kind} if executor_kind else {})
    runs = plan(spec, profile, runs_root)
    write_manifest(runs_root, spec.name, profile, [r.run_id for r in runs], spec.source)
    return execute_runs(runs, runs_root, executor, max_parallel=max_parallel, retry_failed=retry_failed,
                        force=force, progress=progress)


def register_runs(runs: list[RunSpec], runs_root: str | Path, source: str) -> None:
    """Add runs made outside the grid (search trials) to their spec+profile manifest."""
    if runs:
        add_to_manifest(runs_root, runs[0].spec, runs[0].profile, [r.run_id for r in runs], source)
