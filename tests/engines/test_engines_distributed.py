"""The harness trains a run on several local processes (executor.tasks_per_node, torch.distributed
with gloo) and gets the run of one process: the same losses (within float summation order) and
the same metrics. Runs in this process with the inprocess executor; the train stage forks its ranks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from engines_helpers import (
    describe,
    harness,
    losses,
    results_table,
    submitit_folder,
    submitted_runs,
    tiny_spec,
)

from harness.runner import run_spec
from harness.specfile import load_spec

RTOL = 1e-5


def _run(tmp_path: Path, name: str, processes: int) -> Path:
    root = tmp_path / name
    spec = load_spec(
        tiny_spec(
            tmp_path / f"{name}.yaml",
            "dist",
            steps=6,
            checkpoint_every=3,
            executor={"kind": "inprocess", "threads": 1, "tasks_per_node": processes},
        )
    )
    outcome = run_spec(spec, "default", root, progress=False)
    assert all(r.state.value == "done" for r in outcome.results), [
        (r.state, r.message) for r in outcome.results
    ]
    return root


@pytest.fixture(scope="module")
def local_two(tmp_path_factory) -> Path:
    """The runs root of the spec trained on 2 local processes."""
    return _run(tmp_path_factory.mktemp("local"), "two", 2)


def test_two_local_processes_train_the_run_of_one(tmp_path: Path, local_two: Path) -> None:
    one, two = _run(tmp_path, "one", 1), local_two
    a, b = results_table(one, "dist", "default"), results_table(two, "dist", "default")
    assert list(a["run_id"]) == list(
        b["run_id"]
    )  # the number of processes is not part of a run's identity
    for run_id in a.loc[~a["arm"].str.startswith("ref:"), "run_id"]:  # reference runs do not train
        la, lb = (
            losses(one, "dist", "default", run_id)["loss"],
            losses(two, "dist", "default", run_id)["loss"],
        )
        assert len(la) == 6 and ((la - lb).abs() <= RTOL * la.abs()).all(), (list(la), list(lb))
        for root, world in ((one, 1), (two, 2)):  # the processes that wrote the final checkpoint
            state = (
                root / "dist" / "default" / run_id / "stages" / "train" / "checkpoint" / "state.pt"
            )
            assert torch.load(state, weights_only=False)["world_size"] == world
    metrics = [c for c in a.columns if c.startswith("metric.") and c != "metric.train_loss"]
    pd.testing.assert_frame_equal(a[metrics], b[metrics])
    trained = a["metric.train_loss"].notna()
    assert trained.sum() >= 1
    assert a.loc[trained, "metric.train_loss"].to_numpy() == pytest.approx(
        b.loc[trained, "metric.train_loss"].to_numpy(), rel=RTOL
    )


def test_several_nodes_need_slurm(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nodes: expected 1 with executor kind 'inprocess'"):
        load_spec(
            tiny_spec(tmp_path / "s.yaml", "dist", executor={"kind": "inprocess", "nodes": 2})
        )


def test_two_task_slurm_job_trains_the_run_of_two_local_processes(
    slurm_cluster, tmp_path: Path, local_two: Path
) -> None:
    """executor.tasks_per_node 2 on SLURM: one job of 2 tasks per trained run (submitit's
    TorchDistributedEnvironment), rank 0 owns the run, rank 1 joins its training; the figures are
    those of the 2-process local run. The submitter's shell has a stray MASTER_PORT and RANK (as
    after a torchrun), which SLURM passes to every task: the tasks replace them with the job's own
    (before, submitit's export raised on them and every task died)."""
    local = local_two
    spec = tiny_spec(
        tmp_path / "slurm.yaml",
        "dist",
        steps=6,
        checkpoint_every=3,
        executor={
            "kind": "slurm",
            "threads": 1,
            "timeout_min": 10,
            "tasks_per_node": 2,
            "slurm": {"partition": "debug", "cpus_per_task": 1, "mem_gb": 2},
        },
    )
    root = tmp_path / "slurm"
    proc = harness(
        "run",
        spec,
        "--runs-root",
        root,
        "--no-report",
        "--no-progress",
        timeout=600,
        env={"MASTER_PORT": "1", "RANK": "5", "WORLD_SIZE": "9"},
    )
    assert proc.returncode == 0, describe(proc)
    a, b = results_table(local, "dist", "default"), results_table(root, "dist", "default")
    assert (b["state"] == "done").all(), b[["arm", "state"]]
    # two arrays: the trained run's jobs of 2 tasks, and single-task jobs for the reference runs
    assert (
        len({jid.split("_")[0] for jid in submitted_runs(submitit_folder(root, "dist", "default"))})
        == 2
    )
    metrics = [c for c in a.columns if c.startswith("metric.") and c != "metric.train_loss"]
    pd.testing.assert_frame_equal(a[metrics], b[metrics])
    for run_id in a.loc[~a["arm"].str.startswith("ref:"), "run_id"]:
        state = root / "dist" / "default" / run_id / "stages" / "train" / "checkpoint" / "state.pt"
        assert torch.load(state, weights_only=False)["world_size"] == 2
        assert list(losses(local, "dist", "default", run_id)["loss"]) == list(
            losses(root, "dist", "default", run_id)["loss"]
        )
