"""The harness on a real (single-node) SLURM cluster through submitit, against local execution.

Every test submits real jobs to the cluster of scripts/local_slurm.sh (fixture `slurm_cluster`)
and reads states through sacct (slurmdbd accounting), exactly as on a production cluster.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import yaml
from engines_helpers import (
    describe,
    final_states,
    finish,
    harness,
    harness_popen,
    losses,
    results_table,
    sacct_states,
    squeue_state,
    submitit_folder,
    submitted_runs,
    tiny_spec,
    wait_for_jobs,
    wait_until_running,
)

PATH_SHAPE = "ablations/path_shape.yaml"


def _sacct_warnings(stderr: str) -> list[str]:
    """submitit's 'Bypassing sacct error ... status may be inaccurate' lines (accounting not answering)."""
    return [line for line in stderr.splitlines() if "sacct error" in line]


def test_path_shape_smoke_job_array_matches_local(slurm_cluster, tmp_path: Path) -> None:
    """path_shape --profile smoke through one SLURM job array == the local executor, run for run."""
    slurm_root, local_root = tmp_path / "slurm", tmp_path / "local"
    # Both at once: the cluster's jobs and the local subprocesses share the machine's cores.
    on_slurm = harness_popen(
        "run",
        PATH_SHAPE,
        "--profile",
        "smoke",
        "--executor",
        "slurm",
        "--runs-root",
        slurm_root,
        "--no-report",
        "--no-progress",
    )
    local = harness(
        "run",
        PATH_SHAPE,
        "--profile",
        "smoke",
        "--executor",
        "local",
        "--runs-root",
        local_root,
        "--no-report",
        "--no-progress",
    )
    slurm = finish(on_slurm, timeout=600)
    assert slurm[0] == 0, describe(slurm)
    assert local.returncode == 0, describe(local)
    assert not _sacct_warnings(slurm[2]), (
        f"submitit could not read sacct: {_sacct_warnings(slurm[2])}"
    )

    jobs = submitted_runs(submitit_folder(slurm_root, "path_shape", "smoke"))
    arrays = {jid.split("_")[0] for jid in jobs}
    assert len(arrays) == 1 and all("_" in jid for jid in jobs), (
        f"expected one job array, got jobs {sorted(jobs)}"
    )
    states = final_states(sorted(jobs))
    assert states and all(s == ["COMPLETED"] for s in states.values()), f"sacct states: {states}"

    got, want = (
        results_table(slurm_root, "path_shape", "smoke"),
        results_table(local_root, "path_shape", "smoke"),
    )
    assert len(got) == len(jobs) == len(want), (
        f"{len(got)} slurm runs, {len(jobs)} jobs, {len(want)} local runs"
    )
    assert (got["state"] == "done").all(), got[["arm", "state"]]
    # Same configs and seeds, one torch thread each: the results must be bit-identical (tolerance 0).
    pd.testing.assert_frame_equal(
        got.drop(columns="run_id"), want.drop(columns="run_id"), check_exact=True
    )
    for rid_s, rid_l, arm in zip(got["run_id"], want["run_id"], got["arm"]):
        if not arm.startswith("ref:"):
            pd.testing.assert_frame_equal(
                losses(slurm_root, "path_shape", "smoke", rid_s),
                losses(local_root, "path_shape", "smoke", rid_l),
                check_exact=True,
            )


def _arm(run_dir: Path) -> str:
    return json.loads((run_dir / "config.json").read_text())["run"]["arm"]


def test_timed_out_run_checkpoints_requeues_and_matches_uninterrupted(
    slurm_cluster, tmp_path: Path
) -> None:
    """A 1-minute time limit on a longer training: USR2 -> checkpoint -> requeue -> same result."""
    # slurmctld checks time limits every 30 s: with a 60 s limit and USR2 20 s before it, the
    # signal reaches a job 10-40 s after it starts (after submitit installed its handler), so the
    # training must outlast 40 s on an idle core: 8,000 steps take ~80 s there (measured: 2,000
    # steps in ~20 s on an idle 2-core CI machine, which finished before the signal). Once SLURM
    # shows the job requeued, the test raises its limit (as an operator would) so the resumed
    # attempt finishes.
    steps = 8000
    spec = tiny_spec(tmp_path / "requeue.yaml", "eng_requeue", steps=steps, checkpoint_every=50)
    data = yaml.safe_load(spec.read_text())
    data["executor"].update(timeout_min=1, max_requeue=5)
    data["executor"]["slurm"]["additional"] = {"signal": "USR2@20"}
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    slurm_root, ref_root = tmp_path / "slurm", tmp_path / "uninterrupted"
    folder = submitit_folder(slurm_root, "eng_requeue", "default")

    on_slurm = harness_popen("run", spec, "--runs-root", slurm_root, "--no-report", "--no-progress")
    # The uninterrupted twin: same spec and seed, in-process (no time limit), at the same time.
    uninterrupted = harness_popen(
        "run",
        spec,
        "--executor",
        "inprocess",
        "--runs-root",
        ref_root,
        "--no-report",
        "--no-progress",
    )
    jobs = wait_for_jobs(folder, count=7)  # the trained run + 6 reference runs
    (jid,) = [j for j, rdir in jobs.items() if not _arm(rdir).startswith("ref:")]
    deadline = time.monotonic() + 300
    while "REQUEUED" not in sacct_states([jid], duplicates=True).get(jid, []):
        assert on_slurm.poll() is None and time.monotonic() < deadline, (
            f"job {jid} was never requeued; {describe(finish(on_slurm, 60))}"
        )
        time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={jid}", "TimeLimit=10"], check=True, timeout=60)
    slurm, reference = finish(on_slurm, timeout=600), finish(uninterrupted, timeout=600)
    assert slurm[0] == 0, describe(slurm)
    assert reference[0] == 0, describe(reference)

    attempts = final_states([jid], duplicates=True)[jid]
    assert attempts[-1] == "COMPLETED", f"sacct -D states of {jid}: {attempts}"
    log = (folder / f"{jid}_0_log.out").read_text()
    assert "Caught signal SIGUSR2" in (folder / f"{jid}_0_log.err").read_text(), (
        "no USR2 before the time limit"
    )
    assert "Calling checkpoint method" in log and "Requeued job" in log, log[-2000:]

    got, want = (
        results_table(slurm_root, "eng_requeue", "default"),
        results_table(ref_root, "eng_requeue", "default"),
    )
    # Bit-identical resume (ursa.train checkpoints model, AdamW, schedule and RNG): tolerance 0.
    pd.testing.assert_frame_equal(
        got.drop(columns="run_id"), want.drop(columns="run_id"), check_exact=True
    )
    rid, ref_rid = jobs[jid].name, want.loc[got["run_id"] == jobs[jid].name, "run_id"].item()
    trained = losses(slurm_root, "eng_requeue", "default", rid)
    assert len(trained) == steps
    pd.testing.assert_frame_equal(
        trained, losses(ref_root, "eng_requeue", "default", ref_rid), check_exact=True
    )


def test_scancel_records_cancelled_and_rerun_completes_only_them(
    slurm_cluster, tmp_path: Path
) -> None:
    """scancel one running and one still-pending array task: both runs are 'cancelled' (the pending
    one leaves no accounting record, so the harness must notice it left the queue instead of
    waiting forever), the others finish; a rerun computes only the two cancelled runs."""
    spec = tiny_spec(
        tmp_path / "cancel.yaml",
        "eng_cancel",
        steps=100,
        checkpoint_every=50,
        grid={"path.kind": ["masked", "metric"]},
    )
    root = tmp_path / "runs"
    folder = submitit_folder(root, "eng_cancel", "default")
    proc = harness_popen(
        "run",
        spec,
        "--runs-root",
        root,
        "--max-parallel",
        "2",
        "--no-report",
        "--no-progress",
        env={"URSA_SLURM_LOST_AFTER_S": "5"},
    )
    jobs = wait_for_jobs(
        folder, count=8
    )  # 2 grid runs + 6 reference runs, one array of parallelism 2
    order = sorted(jobs, key=lambda j: int(j.split("_")[1]))
    victim, pending = order[0], order[-1]  # the first grid run; the last array task waits its turn
    wait_until_running(victim)
    assert squeue_state(pending) == "PENDING", squeue_state(pending)
    subprocess.run(["scancel", pending], check=True, timeout=60)
    subprocess.run(["scancel", victim], check=True, timeout=60)
    first = finish(proc, timeout=600)
    assert first[0] == 1, f"a cancelled run must make `run` exit 1; {describe(first)}"

    table = results_table(root, "eng_cancel", "default").set_index("run_id")
    cancelled = [jobs[victim].name, jobs[pending].name]
    assert (table.loc[cancelled, "state"] == "cancelled").all(), table[["arm", "state"]]
    others = table.drop(index=cancelled)
    assert (others["state"] == "done").all(), others[["arm", "state"]]
    assert final_states([victim])[victim] == ["CANCELLED"]
    finished_at = {
        rid: (root / "eng_cancel" / "default" / rid / "result.json").stat().st_mtime_ns
        for rid in others.index
    }

    second = harness("run", spec, "--runs-root", root, "--no-report", "--no-progress")
    assert second.returncode == 0, describe(second)
    assert " 2 dispatched" in second.stdout, second.stdout
    table = results_table(root, "eng_cancel", "default").set_index("run_id")
    assert (table["state"] == "done").all(), table[["arm", "state"]]
    for rid, mtime in finished_at.items():  # the runs that had finished were not touched
        assert (
            root / "eng_cancel" / "default" / rid / "result.json"
        ).stat().st_mtime_ns == mtime, rid
    assert len(submitted_runs(folder)) == 10, "the rerun must submit exactly the two cancelled runs"
