"""Processes around `harness run`: workers die with a killed harness, one owner per run (two
harness processes on one runs root compute nothing twice), Ctrl-C, clean errors instead of
tracebacks, and kills at exact write points that reruns repair to identical results."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from harness_fixtures import seeded_runs_root, tiny_spec
from safetensors.torch import load_file

from harness.codehash import clear_cache
from harness.records import RunState
from harness.runner import run_spec
from harness.specfile import load_spec
from harness.store import (
    acquire_run,
    load_results,
    query_index,
    read_json,
    read_result,
    run_dir,
    write_manifest,
    write_result,
)

ROOT = Path(__file__).resolve().parents[2]


def harness(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "harness", *map(str, args)]


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process (zombies aside) whose command line contains `text`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            out.append((int(entry.name), cmd))
    return out


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(
    predicate, timeout: float, proc: subprocess.Popen | None = None, what: str = ""
) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def losses_rows(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except OSError:
        return 0


def assert_trained_once(root: Path, spec_name: str, steps: int) -> None:
    """Every run done; every train stage's losses.csv has steps 1..N once each; every shared stage
    was computed by exactly one run (the `timings` of the runs that computed it)."""
    df = load_results(root, spec_name, "default")
    assert set(df["state"]) == {"done"}, df[["arm", "state", "error"]]
    results = [read_result(Path(d)) for d in df["run_dir"]]
    trained = [r for r in results if r.reference is None]
    for stage in ("train", "sample"):
        ids = {r.stage_ids[stage] for r in trained}
        computed = [r.run_id for r in trained if stage in r.timings]
        assert len(computed) == len(ids), f"{stage}: {len(ids)} stages, computed by {computed}"
    for sid in {r.stage_ids["train"] for r in trained}:
        lines = (root / "_stages" / "train" / sid / "losses.csv").read_bytes().decode().split("\n")
        assert lines[0] == "step,loss" and lines[-1] == ""
        assert [int(line.split(",")[0]) for line in lines[1:-1]] == list(range(1, steps + 1))


def test_killed_harness_leaves_no_worker_and_the_rerun_trains_each_run_once(
    tmp_path: Path, tmp_path_factory
) -> None:
    steps = 300
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec_path = tiny_spec(
        tmp_path / "s.yaml",
        steps=steps,
        checkpoint_every=20,
        executor={"kind": "local", "threads": 1, "max_parallel": 2, "timeout_min": 20},
    )
    spec = load_spec(spec_path)
    cmd = harness("run", spec_path, "--runs-root", root, "--no-report", "--no-progress")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        losses = lambda: sum(losses_rows(p) for p in root.glob("_stages/train/*/losses.csv"))  # noqa: E731
        wait_for(lambda: losses() >= 3, 240, proc, "training in a worker")
        assert processes_mentioning(str(root / spec.name)), "no worker process found while training"
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, as `kill -9 <pid of harness run>`
        proc.wait()
        try:
            wait_for(
                lambda: not processes_mentioning(str(root)),
                5,
                what="the workers to die with the harness",
            )
        except AssertionError:
            raise AssertionError(f"orphaned workers: {processes_mentioning(str(root))}") from None
        rdir = next(
            Path(d)
            for d in root.glob(f"{spec.name}/default/*")
            if (d / "config.json").is_file()
            and read_result(d) is not None
            and read_result(d).reference is None
        )
        assert read_result(rdir).state in (RunState.RUNNING, RunState.PENDING)

        rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert_trained_once(root, spec.name, steps)
        assert not processes_mentioning(str(root))
    finally:
        kill_all([pid for pid, _ in processes_mentioning(str(root))])
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_two_harness_runs_at_once_compute_every_run_once(tmp_path: Path, tmp_path_factory) -> None:
    """Two `harness run` of one spec on one runs root: both exit 0, each shared stage computed once,
    none of the errors concurrent runs used to hit."""
    steps = 30
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec_path = tiny_spec(
        tmp_path / "s.yaml",
        steps=steps,
        checkpoint_every=5,
        seeds=[0, 1],
        grid={"sample.steps": [2, 3]},
    )
    cmd = harness("run", spec_path, "--runs-root", root, "--no-report", "--no-progress")
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        for symptom in (
            "Directory not empty",
            "job ended without a result",
            "No such file",
            "Traceback",
        ):
            assert symptom not in err, err[-3000:]
    assert_trained_once(root, load_spec(spec_path).name, steps)
    assert set(query_index(root)["state"]) == {"done"}
    # the later one waited in its parent (no workers idling on owner locks) and dispatched nothing
    dispatched = sorted(int(re.search(r"(\d+) dispatched", out)[1]) for out, _ in outs)
    assert dispatched[0] == 0 and dispatched[1] == len(query_index(root)), outs


@pytest.mark.parametrize("kind, sig", [("inprocess", signal.SIGINT), ("local", signal.SIGTERM)])
def test_ctrl_c_stops_workers_records_interrupted_and_exits_130(
    kind: str, sig: int, tmp_path: Path, tmp_path_factory
) -> None:
    """Ctrl-C (SIGINT) and SIGTERM (a `kill`, a scheduler stopping the job) alike."""
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec_path = tiny_spec(
        tmp_path / "s.yaml",
        steps=5000,
        checkpoint_every=50,
        executor={"kind": kind, "threads": 1, "max_parallel": 2, "timeout_min": 20},
    )
    spec = load_spec(spec_path)
    proc = subprocess.Popen(
        harness("run", spec_path, "--runs-root", root, "--no-report", "--no-progress"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: any(losses_rows(p) >= 2 for p in root.glob("_stages/train/*/losses.csv")),
            240,
            proc,
            "training",
        )
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-3000:]
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
        lines = [line for line in err.splitlines() if line.strip()]
        assert (
            len(lines) == 1
            and "interrupted" in lines[0]
            and "rerun `python -m harness run" in lines[0]
        ), err
        wait_for(lambda: not processes_mentioning(str(root)), 5, what="the workers to stop")
        df = load_results(root, spec.name, "default")
        assert "interrupted" in set(df["state"]) and set(df["state"]) <= {"interrupted", "done"}, (
            df["state"]
        )
        base = read_result(Path(df.loc[df["arm"] == "base", "run_dir"].item()))
        assert base.state == RunState.INTERRUPTED and "interrupted" in base.error["message"]
        assert not [p for p in root.rglob("*") if ".tmp" in p.name], "temp files left after Ctrl-C"
    finally:
        kill_all([pid for pid, _ in processes_mentioning(str(root))])
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


# ----------------------------------------------------------------------------- clean errors


def one_paragraph(err: str) -> None:
    assert "Traceback" not in err and err.strip(), err
    assert "\n\n" not in err.strip(), err


@pytest.mark.parametrize("sbatch", ["failing", "missing"])
def test_slurm_without_a_working_sbatch_is_a_clean_error(
    sbatch: str, tmp_path: Path, tmp_path_factory
) -> None:
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec_path = tiny_spec(tmp_path / "s.yaml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if sbatch == "failing":
        for tool, body in (
            (
                "sbatch",
                "echo 'sbatch: error: Batch job submission failed: Invalid partition' >&2\nexit 1",
            ),
            ("srun", "exit 0"),
            ("squeue", "exit 1"),
        ):
            (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
            (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": str(bin_dir)}
    res = subprocess.run(
        harness(
            "run",
            spec_path,
            "--runs-root",
            root,
            "--no-report",
            "--no-progress",
            "--executor",
            "slurm",
        ),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr[-3000:]
    one_paragraph(res.stderr)
    assert "executor slurm: could not submit" in res.stderr and "--executor local" in res.stderr
    if sbatch == "failing":
        assert "Invalid partition" in res.stderr
    df = load_results(root, "tiny", "default")
    assert set(df["state"]) == {"pending"}  # nothing ran, nothing recorded as failed


def test_runs_root_that_is_a_file_is_a_clean_error(tmp_path: Path) -> None:
    spec_path = tiny_spec(tmp_path / "s.yaml")
    afile = tmp_path / "runs"
    afile.write_text("not a directory")
    for args in (["run", spec_path, "--no-report"], ["status", spec_path], ["ls"], ["reindex"]):
        res = subprocess.run(
            harness(*args, "--runs-root", afile),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 2, (args, res.stderr)
        one_paragraph(res.stderr)
        assert "--runs-root" in res.stderr and "expected a directory" in res.stderr


def test_status_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    from harness.records import RunResult

    spec_path = tiny_spec(tmp_path / "s.yaml")
    root = tmp_path / "runs"
    ids = [f"r{i:03d}" for i in range(300)]
    for i, rid in enumerate(ids):
        write_result(
            root,
            run_dir(root, "tiny", "default", rid),
            RunResult(
                run_id=rid,
                spec="tiny",
                profile="default",
                arm=f"a{i % 7}",
                seed=i,
                state=RunState.DONE,
                metrics={"m": float(i)},
            ),
        )
    write_manifest(root, "tiny", "default", ids, str(spec_path))
    # `status | head -1`, deterministically: the reader is gone before status writes anything
    r, w = os.pipe()
    os.close(r)
    res = subprocess.run(
        harness("status", spec_path, "--runs-root", root),
        cwd=ROOT,
        stdout=w,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    os.close(w)
    assert res.stderr == "", res.stderr
    assert res.returncode == 141
    shell = subprocess.run(
        f"{sys.executable} -m harness status {spec_path} --runs-root {root} | head -1",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.stderr == "" and len(shell.stdout.splitlines()) == 1, shell.stderr


# ----------------------------------------------------------------------------- kills at exact write points

# Runs the spec in-process and dies (os._exit, as kill -9: no cleanup) at the n-th os.replace onto a
# file named NAME, before or after that rename.
_KILLER = textwrap.dedent("""
    import os, sys
    spec, root, name, nth, when = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    real, seen = os.replace, [0]
    def replace(src, dst, *a, **k):
        hit = os.path.basename(str(dst)) == name
        if hit:
            seen[0] += 1
        if hit and seen[0] == nth and when == "before":
            os._exit(137)
        real(src, dst, *a, **k)
        if hit and seen[0] == nth and when == "after":
            os._exit(137)
    os.replace = replace
    from harness.runner import run_spec
    from harness.specfile import load_spec
    run_spec(load_spec(spec), "default", root, progress=False)
    os._exit(3)  # the kill point was never reached
""")

KILL_POINTS = [
    ("config.json", 1, "after"),  # the first run directory exists, no result yet
    ("result.json", 7, "after"),  # 5 pending heads, running, done: result.json done, index not yet
    (
        "checkpoint",
        2,
        "before",
    ),  # the second checkpoint is in its temp dir, the first parked as .old
    ("losses.csv", 1, "before"),  # losses.csv rewritten at the start of training
    (
        "model.safetensors",
        4,
        "before",
    ),  # 3 checkpoints, then the final model: its temp file written
    ("done.json", 1, "before"),  # model written, train marker not yet
    ("samples.safetensors", 1, "after"),  # samples written, sample marker not yet
    ("scores.json", 1, "after"),  # scores written, score marker not yet
]


@pytest.fixture(scope="module")
def clean_results(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("clean")
    spec = load_spec(tiny_spec(tmp / "s.yaml", steps=6, checkpoint_every=2))
    root = seeded_runs_root(tmp, tmp_path_factory)
    outcome = run_spec(spec, "default", root, progress=False)
    assert outcome.failed == []
    return snapshot(root, spec.name)


def snapshot(root: Path, name: str) -> dict:
    df = load_results(root, name, "default")
    out = {}
    for _, row in df.iterrows():
        res = read_result(Path(row["run_dir"]))
        samples = Path(row["run_dir"]) / "stages" / "sample" / "samples.safetensors"
        out[row["arm"]] = (
            res.state.value,
            res.metrics,
            {k: v.tolist() for k, v in load_file(samples).items()} if samples.exists() else None,
        )
    return out


@pytest.mark.parametrize(
    "name, nth, when", KILL_POINTS, ids=[f"{n}#{k}-{w}" for n, k, w in KILL_POINTS]
)
def test_kill_at_a_write_point_then_rerun_gives_identical_results(
    name: str, nth: int, when: str, tmp_path: Path, tmp_path_factory, clean_results: dict
) -> None:
    spec_path = tiny_spec(tmp_path / "s.yaml", steps=6, checkpoint_every=2)
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLER, str(spec_path), str(root), name, str(nth), when],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == 137, killed.stderr[-3000:]
    planned = read_json(root / "tiny" / "default" / "manifest.json")["run_ids"]
    clear_cache()  # run ids hash the code: this process's cached versions may predate others' commits
    outcome = run_spec(load_spec(spec_path), "default", root, progress=False)
    if sorted(r.run_id for r in outcome.results) != planned:
        pytest.skip(
            "the code under test changed (a commit elsewhere) between the kill and the rerun: new run ids"
        )
    assert outcome.failed == [], [r.error for r in outcome.failed]
    assert snapshot(root, "tiny") == clean_results
    assert set(query_index(root, "tiny", "default")["state"]) == {"done"}  # the index caught up
    assert not [p for p in root.rglob("*") if ".tmp" in p.name], (
        "stale temp files survived the rerun"
    )
    hold = acquire_run(Path(load_results(root, "tiny", "default")["run_dir"][0]), wait=False)
    assert hold is not None  # the killed process's ownership died with it
    hold.release()
