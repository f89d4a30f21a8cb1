"""Distributed Optuna search: workers in two local processes and two SLURM jobs share one study
in a real PostgreSQL (scripts/local_postgres.sh), each trial a harness run in one run store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import psycopg2
import submitit
from engines_helpers import REPO, describe, final_states, results_table, tiny_spec

N_TRIALS = 6
GRID = {
    "path.c": {"type": "float", "low": 1.0, "high": 4.0, "step": 1.0},  # 4 values
    "path.alpha": {"type": "categorical", "choices": [0.5, 0.9]},
}  # x 2 = 8 grid points > N_TRIALS

WORKER = """
import sys
from harness.search import run_search
from harness.spec import ExecutorConfig
from harness.specfile import load_spec
run_search(load_spec(sys.argv[1]), sys.argv[2], "default", sys.argv[3], ExecutorConfig(kind="inprocess", threads=1),
           progress=False)
"""


def test_two_processes_and_two_slurm_jobs_share_one_postgres_study(
    slurm_cluster, postgres_url, tmp_path: Path
) -> None:
    from harness.data import data_for
    from harness.expand import apply_profile, make_run
    from harness.search import counted, open_study, run_search
    from harness.spec import ExecutorConfig
    from harness.specfile import load_spec
    from harness.token_shards import training_tokens

    url = postgres_url.address
    # a study of its own: the PostgreSQL server outlives test sessions, and tmp_path names repeat
    study_name = f"eng_search_{tmp_path.name}_{uuid.uuid4().hex[:8]}"
    spec_path = tiny_spec(
        tmp_path / "search.yaml",
        "eng_search",
        search={
            "params": GRID,
            "n_trials": N_TRIALS,
            "sampler": "grid",
            "sampler_seed": 0,
            "objective": "alignment",
            "direction": "maximize",
            "study_name": study_name,
        },
    )
    spec, root = load_spec(spec_path), tmp_path / "runs"
    # Fit the tokenizer and tokenise the data once, so the four workers start from a warm cache.
    resolved, base = apply_profile(spec, "default")
    config = make_run(resolved, "default", base, {}, 0).config
    training_tokens(data_for(config, root), root)

    # Hold every worker at its first read of the study until all four are connected, so that
    # both kinds of worker take trials (else the first to start can finish the budget alone).
    open_study(resolved, root, "default", url)
    gate = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    gate.cursor().execute("LOCK TABLE trials IN ACCESS EXCLUSIVE MODE")
    names = [f"local{i}" for i in range(2)] + [f"slurm{i}" for i in range(2)]
    worker_url = {n: f"{url}?application_name={n}" for n in names}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(spec_path), str(root), worker_url[n]],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in names[:2]
    ]
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(slurm_partition="debug", timeout_min=10, cpus_per_task=1, mem_gb=2)
    with executor.batch():  # one job array of two search workers
        jobs = [
            executor.submit(
                run_search,
                spec,
                root,
                "default",
                worker_url[n],
                ExecutorConfig(kind="inprocess", threads=1),
                progress=False,
            )
            for n in names[2:]
        ]
    waiting: set[str] = set()
    deadline = time.monotonic() + 180
    while waiting != set(names):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), (
            f"workers never all reached the study (waiting: {sorted(waiting)})"
        )
        time.sleep(0.5)
        with psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://")) as probe:
            cur = probe.cursor()
            cur.execute(
                "SELECT application_name FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            )
            waiting = {row[0] for row in cur.fetchall()}
        probe.close()
    gate.commit()
    gate.close()
    outs = [(w.wait(timeout=600), *w.communicate()) for w in workers]
    for out in outs:
        assert out[0] == 0, describe(out)
    for job in jobs:
        job.result()  # raises with the job's stderr if the worker failed
    assert final_states([j.job_id for j in jobs]) == {j.job_id: ["COMPLETED"] for j in jobs}

    study = optuna.load_study(study_name=study_name, storage=url)
    trials = counted(study.get_trials(deepcopy=False))
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == len(complete) == N_TRIALS, [
        (t.number, t.state, t.user_attrs) for t in study.trials
    ]
    points = [(t.params["path.c"], t.params["path.alpha"]) for t in complete]
    assert len(set(points)) == N_TRIALS, f"a grid point was run twice: {sorted(points)}"

    table = results_table(root, "eng_search", "default").set_index("run_id")
    for t in complete:
        (rid,) = t.user_attrs["run_ids"]  # one seed: one run per trial
        assert rid in table.index, f"trial {t.number}'s run {rid} is not in the store"
        row = table.loc[rid]
        assert row["state"] == "done"
        assert (row["param.path.c"], row["param.path.alpha"]) == (
            t.params["path.c"],
            t.params["path.alpha"],
        )
        assert row["metric.alignment"] == t.value  # objective = mean over one seed, exact
    # Both kinds of worker took part: run results carry the pid of the process that ran them.
    local_pids = {w.pid for w in workers}
    pids = {
        json.loads((root / "eng_search" / "default" / rid / "result.json").read_text())["pid"]
        for t in complete
        for rid in t.user_attrs["run_ids"]
    }
    assert pids & local_pids and pids - local_pids, (
        f"run pids {pids}, local worker pids {local_pids}"
    )
