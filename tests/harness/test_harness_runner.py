"""Running specs: skip-completed, failure isolation, --retry-failed / --force, resume after a kill."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness_fixtures import seeded_runs_root, tiny_spec
from safetensors.torch import load_file

from harness.records import RunState
from harness.runner import run_spec
from harness.specfile import load_spec
from harness.store import load_results, read_result

ROOT = Path(__file__).resolve().parents[2]


def test_failure_isolation_then_skip_completed_and_retry(tmp_path: Path, tmp_path_factory) -> None:
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    # head_dim 15 passes the spec but URSAConfig rejects it at train time: that run fails, the other finishes
    spec = load_spec(tiny_spec(tmp_path / "s.yaml", grid={"model.overrides.head_dim": [16, 15]}))
    first = run_spec(spec, "default", root, progress=False)
    states = {r.arm: r.state for r in first.results}
    assert states["model.overrides.head_dim=15"] == RunState.FAILED
    assert states["model.overrides.head_dim=16"] == RunState.DONE
    refs = ("real", "reconstruction", "static", "memoriser", "shuffled", "random")
    assert all(states[f"ref:{n}"] == RunState.DONE for n in refs)
    bad = next(r for r in first.results if r.state == RunState.FAILED)
    assert "head_dim" in bad.error["message"] and "Traceback" in bad.error["traceback"]

    again = run_spec(spec, "default", root, progress=False)
    assert again.computed == 0  # nothing recomputed, failed not retried
    assert [r.run_id for r in again.results] == [r.run_id for r in first.results]

    retry = run_spec(spec, "default", root, retry_failed=True, progress=False)
    assert retry.computed == 1 and len(retry.failed) == 1  # only the failed run was attempted again

    df = load_results(root, spec.name, "default")
    assert len(df) == 8 and {"metric.train_loss", "param.model.overrides.head_dim"} <= set(
        df.columns
    )


def test_force_recomputes(tmp_path: Path, tmp_path_factory) -> None:
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec = load_spec(tiny_spec(tmp_path / "s.yaml", steps=2))
    first = run_spec(spec, "default", root, progress=False)
    forced = run_spec(spec, "default", root, force=True, progress=False)
    assert forced.computed == len(first.results) == 7
    assert [r.metrics for r in forced.results] == [
        r.metrics for r in first.results
    ]  # deterministic on CPU


def _base_run_dir(root: Path, spec_name: str) -> Path:
    df = load_results(root, spec_name, "default")
    return Path(df.loc[df["arm"] == "base", "run_dir"].item())


def test_resume_after_kill_gives_the_same_result(tmp_path: Path, tmp_path_factory) -> None:
    """Kill a subprocess run at a random point after its first training checkpoint, rerun: same outputs."""
    steps = 150
    spec_path = tiny_spec(tmp_path / "s.yaml", steps=steps, checkpoint_every=10)
    spec = load_spec(spec_path)
    killed_root = seeded_runs_root(tmp_path / "a", tmp_path_factory)
    clean_root = seeded_runs_root(tmp_path / "b", tmp_path_factory)
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "run",
        str(spec_path),
        "--runs-root",
        str(killed_root),
        "--no-report",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 240
    # globbed, not computed: the run id includes the git dirty flag, which other work in the tree may flip
    pattern = f"{spec.name}/default/*/stages/train/checkpoint/state.pt"
    while not list(killed_root.glob(pattern)) and time.time() < deadline:
        assert proc.poll() is None, "run finished before it could be killed"
        time.sleep(0.05)
    time.sleep(
        random.Random(os.getpid()).uniform(0.0, 0.3)
    )  # a random point mid-training (150 steps take seconds)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rdir = list(killed_root.glob(pattern))[0].parents[3]
    assert read_result(rdir).state in (RunState.RUNNING, RunState.PENDING)

    resumed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    clean = run_spec(spec, "default", clean_root, progress=False)
    assert clean.failed == []
    rdir, clean_dir = _base_run_dir(killed_root, spec.name), _base_run_dir(clean_root, spec.name)
    assert read_result(rdir).metrics == read_result(clean_dir).metrics
    a = load_file(rdir / "stages" / "sample" / "samples.safetensors")["t2v"]
    b = load_file(clean_dir / "stages" / "sample" / "samples.safetensors")["t2v"]
    assert (a == b).all()
    losses = (rdir / "stages" / "train" / "losses.csv").read_text().splitlines()
    assert (
        len(losses) == steps + 1
        and losses == (clean_dir / "stages" / "train" / "losses.csv").read_text().splitlines()
    )


def test_reference_rows_are_planned_once_per_data_set_the_arms_use(tmp_path: Path) -> None:
    """Arms at 4 and 8 frames (two paths each) get one set of reference rows per length, carrying
    the length in params (results.csv's param column) and in the label; a spec whose arms share
    one data set keeps unlabelled rows with the same ids as before."""
    from harness.plugins import BENCHMARKS
    from harness.runner import plan

    crossed = load_spec(
        tiny_spec(
            tmp_path / "a.yaml",
            grid={"path.kind": ["masked", "metric"]},
            zip=[{"benchmark.world.frames": [4, 8], "benchmark.world.speed": [1.0, 0.4]}],
        )
    )
    refs = [r for r in plan(crossed, "default", tmp_path / "runs") if r.reference]
    names = BENCHMARKS.get("shapes").references
    assert len(refs) == 2 * len(names)
    assert {r.params["benchmark.world.frames"] for r in refs} == {4, 8}
    assert {
        r.config.benchmark.options()["world"]["frames"]
        for r in refs
        if r.params["benchmark.world.frames"] == 8
    } == {8}
    assert f"ref:{names[0]}, benchmark.world.frames=8, benchmark.world.speed=0.4" in {
        r.arm for r in refs
    }
    assert len({r.run_id for r in refs}) == len(refs)
    single = load_spec(tiny_spec(tmp_path / "b.yaml", grid={"path.kind": ["masked", "metric"]}))
    plain = [r for r in plan(single, "default", tmp_path / "runs") if r.reference]
    assert [r.arm for r in plain] == [f"ref:{n}" for n in names] and all(
        r.params == {} for r in plain
    )
    four = {r.reference: r.run_id for r in refs if r.params["benchmark.world.frames"] == 4}
    assert {r.reference: r.run_id for r in plain} == four  # the same data set: the same rows
    from harness.tables import REFERENCE_ROLES, arm_role

    assert all(
        arm_role(r.arm) == REFERENCE_ROLES[f"ref:{r.reference}"] for r in refs
    )  # floors stay floors
