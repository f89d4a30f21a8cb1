"""Run a spec: expand -> ids -> run directories -> dispatch what is missing -> manifest.

A run whose result says "done" is never recomputed; "failed" runs are retried only with
`retry_failed`; `force` deletes and recomputes everything; anything else (absent, pending,
running after a kill, cancelled) resumes from its on-disk stage state.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bench import data_fingerprint
from harness.dispatch import RunTask, dispatch
from harness.expand import RunSpec, apply_profile, expand
from harness.identity import assign_ids, code_version, data_config, sha256_of
from harness.spec import ExecutorConfig, RunConfig, Spec
from harness.store import add_to_manifest, atomic_write_json, read_result, run_dir, write_manifest, write_result

REFERENCES = ("real", "reconstruction", "shuffled", "random")


@dataclass
class Outcome:
    """What `execute_runs` did: final results in run order, and how many were (re)computed."""

    results: list[dict[str, Any]]
    computed: int

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("state") != "done"]


def reference_runs(spec: Spec, profile: str, runs_root: str | Path) -> list[RunSpec]:
    """One run per reference generator on the profile's base data config (floors and ceilings)."""
    resolved, base = apply_profile(spec, profile)
    config = RunConfig.model_validate(base)
    runs = []
    for name in REFERENCES:
        run = RunSpec(spec=spec.name, profile=profile, arm=f"ref:{name}", seed=config.score.seed, params={},
                      config=config)
        data = data_config(run)
        payload = {"reference": name, **data, "score": config.score.model_dump(mode="json"),
                   "tasks": config.sample.tasks,
                   "code": {k: v for k, v in code_version().items() if k != "commit"},
                   "data": data_fingerprint(runs_root)(data)}
        run.run_id = sha256_of(payload)[:16]
        runs.append(run)
    return runs


def plan(spec: Spec, profile: str, runs_root: str | Path, references: bool = True) -> list[RunSpec]:
    """Every run of spec+profile with its id (grid x zip x seeds, then reference rows)."""
    runs = assign_ids(expand(spec, profile), data_fingerprint(runs_root))
    return runs + (reference_runs(spec, profile, runs_root) if references else [])


def prepare_run_dir(run: RunSpec, runs_root: str | Path, force: bool = False) -> Path:
    """Create the run directory with config.json (written once: the id is the content hash)."""
    rdir = run_dir(runs_root, run.spec, run.profile, run.run_id)
    if force and rdir.exists():
        shutil.rmtree(rdir)
    if not (rdir / "config.json").exists():
        meta = {"run": {"run_id": run.run_id, "spec": run.spec, "profile": run.profile, "arm": run.arm,
                        "seed": run.seed, "params": run.params, **run.extra},
                "config": run.config.model_dump(mode="json"), "code": code_version(),
                "data": data_fingerprint(runs_root)(data_config(run))}  # world + tokenizer, as in the id
        atomic_write_json(rdir / "config.json", meta)
    if read_result(rdir) is None:
        write_result(runs_root, rdir, {**_head(run), "state": "pending", "metrics": {}, "error": None})
    return rdir


def _head(run: RunSpec) -> dict[str, Any]:
    return {"run_id": run.run_id, "spec": run.spec, "profile": run.profile, "arm": run.arm, "seed": run.seed,
            "params": run.params, **run.extra}


def execute_runs(runs: list[RunSpec], runs_root: str | Path, executor: ExecutorConfig, *,
                 max_parallel: int | None = None, retry_failed: bool = False, force: bool = False,
                 progress: bool = True) -> Outcome:
    """Dispatch the runs that are not finished; returns every run's final result (in order)."""
    runs_root = Path(runs_root)
    todo: list[tuple[int, RunTask]] = []
    results: list[dict[str, Any] | None] = []
    for i, run in enumerate(runs):
        rdir = prepare_run_dir(run, runs_root, force=force)
        result = read_result(rdir) or {}
        state = result.get("state")
        if state == "done" or (state == "failed" and not retry_failed):
            results.append(result)
            continue
        results.append(None)
        todo.append((i, RunTask(runs_root, rdir, progress=progress and executor.kind == "inprocess")))
    if todo:
        # submitit's job folder: must be on a filesystem the compute nodes share (SLURM)
        folder = runs_root / (executor.folder or Path(runs[0].spec) / runs[0].profile / "_submitit")
        for (i, _), res in zip(todo, dispatch([t for _, t in todo], executor, folder, max_parallel=max_parallel,
                                              progress=progress)):
            results[i] = res
    return Outcome([r or {} for r in results], computed=len(todo))


def run_spec(spec: Spec, profile: str, runs_root: str | Path, *, executor_kind: str | None = None,
             max_parallel: int | None = None, retry_failed: bool = False, force: bool = False,
             progress: bool = True) -> Outcome:
    """Plan, record the manifest, and execute every grid / reference run of spec+profile."""
    resolved, _ = apply_profile(spec, profile)
    executor = resolved.executor.model_copy(update={"kind": executor_kind} if executor_kind else {})
    runs = plan(spec, profile, runs_root)
    write_manifest(runs_root, spec.name, profile, [r.run_id for r in runs])
    return execute_runs(runs, runs_root, executor, max_parallel=max_parallel, retry_failed=retry_failed,
                        force=force, progress=progress)


def register_runs(runs: list[RunSpec], runs_root: str | Path) -> None:
    """Add runs made outside the grid (search trials) to their spec+profile manifest."""
    if runs:
        add_to_manifest(runs_root, runs[0].spec, runs[0].profile, [r.run_id for r in runs])
