"""The run store's state on disk: full disks, a drifting / deleted / corrupt index, stale temp files,
damaged result, config, manifest, marker, checkpoint and cache files, `reset`, the submitit folder
and file modes. Each damage is reported with the file's path and repaired by recomputing only
what it touched."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from harness_fixtures import seeded_runs_root, tiny_spec

import ursa.io
from harness.cli import main
from harness.records import RunState
from harness.runner import plan, run_spec, submitit_folder
from harness.spec import ExecutorConfig
from harness.specfile import load_spec
from harness.store import (
    INDEX,
    acquire_run,
    load_results,
    query_index,
    read_json,
    read_result,
    stage_done,
    write_result,
)

STEPS = 6


@pytest.fixture(scope="module")
def done_root(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A runs root where the tiny spec (1 arm + 6 references) finished; (spec path, root, metrics by arm)."""
    tmp = tmp_path_factory.mktemp("done")
    spec_path = tiny_spec(tmp / "s.yaml", steps=STEPS, checkpoint_every=2)
    root = seeded_runs_root(tmp, tmp_path_factory)
    outcome = run_spec(load_spec(spec_path), "default", root, progress=False)
    assert outcome.failed == []
    return spec_path, root, metrics_by_arm(root)


def metrics_by_arm(root: Path) -> dict:
    df = load_results(root, "tiny", "default")
    return {
        row["arm"]: (row["state"], read_result(Path(row["run_dir"])).metrics)
        for _, row in df.iterrows()
    }


def copy_of(done_root, tmp_path: Path) -> tuple[Path, Path, dict]:
    spec_path, root, metrics = done_root
    dst = tmp_path / "runs"
    shutil.copytree(root, dst, symlinks=True)
    return spec_path, dst, metrics


def base_dir(root: Path) -> Path:
    df = load_results(root, "tiny", "default")
    return Path(df.loc[df["arm"] == "base", "run_dir"].item())


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def set_state(rdir: Path, state: RunState, root: Path) -> None:
    res = read_result(rdir)
    res.state = state
    write_result(root, rdir, res)


# ----------------------------------------------------------------------------- disk full


def _full_disk_writer(real, doomed: Path):
    """ursa.io._open_temp whose temp files under `doomed` are /dev/full: every write to them
    fails as on a full disk (ENOSPC, no file name), whoever does the writing."""

    def open_temp(path: Path, suffix: str):
        if doomed in path.parents:
            tmp = path.with_name(f".{path.name}.{ursa.io.temp_tag()}{suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.symlink_to("/dev/full")
            return os.open(tmp, os.O_WRONLY), tmp
        return real(path, suffix)

    return open_temp


def test_a_run_that_cannot_write_fails_alone_and_its_record_failure_is_reported(
    done_root, tmp_path: Path, tmp_path_factory, monkeypatch, capsys
) -> None:
    """Simulated full disk under one run directory (no root needed): that run fails with 'No space
    left on device' and the path, its temp files are gone, the others finish, and the result.json it
    cannot write is reported on stderr without stopping `run`."""
    spec_path = tiny_spec(tmp_path / "s.yaml", steps=STEPS, checkpoint_every=2, seeds=[0, 1])
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec = load_spec(spec_path)
    runs = plan(spec, "default", root)
    victim = next(r for r in runs if r.seed == 1 and r.reference is None)
    doomed = root / spec.name / "default" / victim.run_id / "stages" / "score"
    monkeypatch.setattr(ursa.io, "_open_temp", _full_disk_writer(ursa.io._open_temp, doomed))
    outcome = run_spec(spec, "default", root, progress=False)
    failed = {r.run_id: r for r in outcome.failed}
    assert list(failed) == [victim.run_id], [r.error for r in outcome.failed]
    message = failed[victim.run_id].error["message"]
    assert (
        "No space left on device" in message and f"{doomed}/" in message
    )  # the file it was writing
    assert not [p for p in doomed.parent.parent.rglob("*") if ".tmp" in p.name]

    # now result.json cannot be written either: reported on stderr, `run` goes on and exits 1
    monkeypatch.setattr(
        ursa.io, "_open_temp", _full_disk_writer(ursa.io._open_temp, doomed.parent.parent)
    )
    capsys.readouterr()
    code, out, err = cli(
        capsys,
        "run",
        spec_path,
        "--runs-root",
        root,
        "--retry-failed",
        "--no-report",
        "--no-progress",
    )
    assert code == 1
    assert f"{doomed.parent.parent / 'result.json'}: could not record state" in err
    assert "No space left on device" in err and "Traceback" not in err
    monkeypatch.undo()
    code, out, err = cli(
        capsys,
        "run",
        spec_path,
        "--runs-root",
        root,
        "--retry-failed",
        "--no-report",
        "--no-progress",
    )
    assert code == 0, err  # space again: the run recovers
    df = load_results(root, spec.name, "default")
    assert set(df["state"]) == {"done"}


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return res.returncode == 0


def test_a_really_full_disk_fails_one_run_and_leaves_no_temp_files(
    tmp_path: Path, tmp_path_factory, capsys
) -> None:
    """A 1 MB tmpfs under one run's training stage (its first checkpoint does not fit) and a full
    one as another run's directory (not even config.json fits): both fail alone, with the path."""
    spec_path = tiny_spec(tmp_path / "s.yaml", steps=STEPS, checkpoint_every=2, seeds=[0, 1, 2])
    root = seeded_runs_root(tmp_path, tmp_path_factory)
    spec = load_spec(spec_path)
    runs = [r for r in plan(spec, "default", root) if r.reference is None]
    train_dir = root / "_stages" / "train" / runs[0].stage_ids["train"]
    full_dir = root / spec.name / "default" / runs[1].run_id
    if not _mount_tmpfs(train_dir, "1M"):
        pytest.skip(
            "cannot mount a tmpfs here (needs root); the simulated full-disk test covers the logic"
        )
    try:
        assert _mount_tmpfs(full_dir, "64k")
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={full_dir / 'filler'}", "bs=4k"], capture_output=True
        )
        capsys.readouterr()
        code, out, err = cli(
            capsys, "run", spec_path, "--runs-root", root, "--no-report", "--no-progress"
        )
        assert code == 1 and "Traceback" not in err
        df = load_results(root, spec.name, "default")
        assert sorted(df["state"]) == ["done"] * 7 + [
            "failed"
        ]  # runs[1] has no result.json to list
        msg = df.loc[df["run_id"] == runs[0].run_id, "error"].item()
        assert "No space left on device" in msg and "stages/train/checkpoint" in msg, msg
        assert f"{full_dir / 'result.json'}: could not record state failed" in err
        assert "No space left on device" in err
        for d in (train_dir, full_dir):
            assert not [p for p in d.rglob("*") if ".tmp" in p.name], list(d.rglob("*"))
    finally:
        for d in (full_dir, train_dir):
            subprocess.run(["umount", str(d)], capture_output=True)
    code, out, err = cli(
        capsys,
        "run",
        spec_path,
        "--runs-root",
        root,
        "--retry-failed",
        "--no-report",
        "--no-progress",
    )
    assert code == 0, err
    assert set(load_results(root, spec.name, "default")["state"]) == {"done"}


# ----------------------------------------------------------------------------- the index


def test_index_is_reconciled_rebuilt_and_repaired(done_root, tmp_path: Path, capsys) -> None:
    spec_path, root, metrics = copy_of(done_root, tmp_path)
    rdir = base_dir(root)
    # a kill between result.json and the index write: the index says running forever, until a run
    with sqlite3.connect(root / INDEX) as con:
        con.execute("UPDATE runs SET state = 'running' WHERE run_id = ?", (rdir.name,))
    con.close()
    assert "running" in set(query_index(root)["state"])
    code, out, err = cli(
        capsys, "run", spec_path, "--runs-root", root, "--no-report", "--no-progress"
    )
    assert code == 0 and "0 dispatched" in out, err
    assert set(query_index(root)["state"]) == {"done"}

    # a deleted index: `ls` rebuilds it
    for p in root.glob(f"{INDEX}*"):
        p.unlink()
    code, out, err = cli(capsys, "ls", "--runs-root", root)
    assert code == 0 and "missing; rebuilt from 7 result.json files" in err
    assert len(query_index(root)) == 7

    # a truncated index: moved aside, rebuilt, one line
    data = (root / INDEX).read_bytes()
    (root / INDEX).write_bytes(data[: len(data) // 2] if len(data) > 8192 else data[:3000])
    code, out, err = cli(capsys, "ls", "--runs-root", root)
    assert code == 0 and "tiny" in out, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "corrupt" in lines[0] and f"{INDEX}.corrupt-" in lines[0], err
    assert list(root.glob(f"{INDEX}.corrupt-*"))
    assert len(query_index(root)) == 7

    # garbage: `reindex` moves it aside and rebuilds
    (root / INDEX).write_bytes(b"\xff" * 5000)
    code, out, err = cli(capsys, "reindex", "--runs-root", root)
    assert code == 0 and "rebuilt from 7 result.json files" in out and "corrupt" in err
    assert set(query_index(root)["state"]) == {"done"}


# ----------------------------------------------------------------------------- stale temp files


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_are_swept_and_live_ones_kept(done_root, tmp_path: Path, capsys) -> None:
    spec_path, root, metrics = copy_of(done_root, tmp_path)
    rdir = base_dir(root)
    train = (rdir / "stages" / "train").resolve()
    dead, host = _dead_pid(), ursa.io._HOST
    stale = [
        rdir / f".result.json.{dead}-{host}0123abcd.tmp",  # a killed writer of this host
        rdir / ".config.json.tmp",  # untagged (older code): stale in a directory the sweeper owns
        rdir / "stages" / "score" / f".scores.json.{dead}-{host}89abcdef.tmp",
        train
        / f".{'checkpoint'}.tmp-{dead}-{host}deadbeef",  # a killed checkpoint writer (a directory)
        train / "model" / f".model.safetensors.{dead}-{host}00000000.tmp",
    ]
    live = [rdir / f".result.json.{os.getpid()}-{host}0badcafe.tmp"]  # this process: a live writer
    for p in stale + live:
        if "checkpoint" in p.name:
            p.mkdir()
            (p / "state.pt").write_bytes(b"half")
        else:
            p.write_bytes(b"partial")
    set_state(rdir, RunState.RUNNING, root)  # as a kill leaves it
    (rdir / "stages" / "score" / "done.json").unlink()
    code, out, err = cli(
        capsys, "run", spec_path, "--runs-root", root, "--no-report", "--no-progress"
    )
    assert code == 0, err
    assert [p for p in stale if p.exists()] == [] and all(p.exists() for p in live)
    assert "stale temp file" in err
    assert metrics_by_arm(root) == metrics


# ----------------------------------------------------------------------------- damaged files


def test_damaged_result_config_and_manifest_are_reported_and_rewritten(
    done_root, tmp_path: Path, capsys
) -> None:
    spec_path, root, metrics = copy_of(done_root, tmp_path)
    rdir = base_dir(root)
    ref = next(
        p for p in rdir.parent.iterdir() if p.is_dir() and p != rdir and not p.name.startswith("_")
    )
    manifest = rdir.parent / "manifest.json"
    run_ids = read_json(manifest)["run_ids"]
    (rdir / "result.json").write_bytes(b"\xff\xfe not utf-8 \x80")
    (ref / "config.json").write_text((ref / "config.json").read_text()[:40])
    manifest.write_text('{"run_ids": ["')

    code, out, err = cli(capsys, "status", spec_path, "--runs-root", root)
    assert code == 0, err
    assert str(manifest) in err and str(rdir / "result.json") in err
    code, out, err = cli(
        capsys, "run", spec_path, "--runs-root", root, "--no-report", "--no-progress"
    )
    assert code == 0, err
    assert str(ref / "config.json") in err
    assert (
        "1 dispatched" in out
    )  # only the run whose result was unreadable, from its finished stages
    assert metrics_by_arm(root) == metrics
    assert read_json(ref / "config.json")["run"]["run_id"] == ref.name
    assert sorted(read_json(manifest)["run_ids"]) == sorted(run_ids)
    code, out, err = cli(capsys, "status", spec_path, "--runs-root", root)
    assert code == 0 and err == ""


def test_damaged_stage_outputs_are_recomputed_alone(done_root, tmp_path: Path, capsys) -> None:
    """Truncated model, samples, checkpoint and training-data cache, and an empty done.json: the
    markers' checksums catch them, --retry-failed recomputes those stages only, same results."""
    spec_path, root, metrics = copy_of(done_root, tmp_path)
    rdir = base_dir(root)
    train, sample = (rdir / "stages" / "train").resolve(), (rdir / "stages" / "sample").resolve()
    done_sample = read_json(sample / "done.json")
    assert "samples.safetensors" in done_sample["sha256"]
    model = train / "model" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:1000])
    state = train / "checkpoint" / "state.pt"
    state.write_bytes(state.read_bytes()[:500])
    samples = sample / "samples.safetensors"
    samples.write_bytes(samples.read_bytes()[:-10])
    (sample / "done.json").write_text("")
    cache = next((root / "_cache" / "data").glob("train-*.safetensors"))
    cache.write_bytes(cache.read_bytes()[:200])
    assert (
        not stage_done(rdir, "train")
        and not stage_done(rdir, "sample")
        and stage_done(rdir, "score")
    )
    res = read_result(rdir)
    res.fail(RunState.FAILED, "failed while its files were damaged")
    write_result(root, rdir, res)

    code, out, err = cli(
        capsys,
        "run",
        spec_path,
        "--runs-root",
        root,
        "--retry-failed",
        "--no-report",
        "--no-progress",
    )
    assert code == 0, err
    assert (
        f"{rdir}/stages/train/model/model.safetensors: damaged" in err
    )  # named by the path the run sees
    assert "damaged checkpoint" in err and f"{cache}: damaged cache (unreadable" in err
    assert f"{rdir}/stages/sample/done.json: unreadable" in err
    after = read_result(rdir)
    assert set(after.timings) == {"train", "sample"}  # score was intact: not recomputed
    assert metrics_by_arm(root) == metrics
    assert stage_done(rdir, "train") and stage_done(rdir, "sample")
    lines = (train / "losses.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, STEPS + 1))


def test_reset_deletes_one_run_and_only_its_unshared_stages(
    done_root, tmp_path: Path, capsys
) -> None:
    spec_path, root, metrics = copy_of(done_root, tmp_path)
    rdir = base_dir(root)
    train, sample = (rdir / "stages" / "train").resolve(), (rdir / "stages" / "sample").resolve()
    others = [
        p for p in rdir.parent.iterdir() if p.is_dir() and p != rdir and not p.name.startswith("_")
    ]

    hold = acquire_run(rdir, wait=False)
    code, out, err = cli(capsys, "reset", spec_path, "--runs-root", root, "--run", rdir.name)
    hold.release()
    assert code == 2 and f"owned by pid {os.getpid()}" in err and rdir.exists()
    code, out, err = cli(capsys, "reset", spec_path, "--runs-root", root, "--run", "nonexistent")
    assert code == 2 and "--run 'nonexistent'" in err

    code, out, err = cli(capsys, "reset", spec_path, "--runs-root", root, "--run", rdir.name[:8])
    assert code == 0, err
    assert not rdir.exists() and not train.exists() and not sample.exists()
    assert all((p / "result.json").is_file() for p in others)
    assert rdir.name not in set(query_index(root)["run_id"])
    code, out, err = cli(
        capsys, "run", spec_path, "--runs-root", root, "--no-report", "--no-progress"
    )
    assert code == 0 and "1 dispatched" in out, err
    assert metrics_by_arm(root) == metrics


# ----------------------------------------------------------------------------- folder, modes


@pytest.mark.parametrize("folder", ["/tmp/elsewhere", "../outside", "jobs/../../x", "~/jobs"])
def test_executor_folder_must_stay_in_the_runs_root(folder: str, tmp_path: Path, capsys) -> None:
    spec_path = tiny_spec(tmp_path / "s.yaml", executor={"kind": "local", "folder": folder})
    code, out, err = cli(capsys, "run", spec_path, "--runs-root", tmp_path / "runs", "--no-report")
    assert code == 2 and "executor.folder" in err and repr(folder) in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "tiny").exists()  # nothing planned or computed


def test_executor_folder_inside_the_runs_root(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    assert (
        submitit_folder(root, ExecutorConfig(kind="local", folder="jobs/a"), "s", "p")
        == root / "jobs" / "a"
    )
    assert (
        submitit_folder(root, ExecutorConfig(kind="local"), "s", "p")
        == root / "s" / "p" / "_submitit"
    )


def test_output_files_honour_the_umask(done_root) -> None:
    """Every file of a finished run is group/world readable under umask 022, safetensors included
    (safetensors writes 0o600 files of its own)."""
    _, root, _ = done_root
    modes = {
        p: stat.S_IMODE(p.stat().st_mode)
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and "_cache" not in p.parts
    }
    assert modes and {p.name for p, m in modes.items() if m & 0o044 != 0o044} == set()
    code = (
        "import os, stat, sys; os.umask(0o027); from pathlib import Path; import torch; "
        "from safetensors.torch import save_file; from ursa.io import atomic_write, atomic_write_json; "
        "d = Path(sys.argv[1]); atomic_write(d / 'a.safetensors', lambda p: save_file({'x': torch.ones(2)}, str(p))); "
        "atomic_write_json(d / 'b.json', {}); "
        "print(*[oct(stat.S_IMODE((d / n).stat().st_mode)) for n in ('a.safetensors', 'b.json')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root.parent)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["0o640", "0o640"]


def test_result_json_of_another_version_is_not_trusted(tmp_path: Path) -> None:
    """A result.json that parses but is not a result (a list, a bad state) reads as absent, with its path."""
    rdir = tmp_path / "r"
    rdir.mkdir()
    (rdir / "result.json").write_text(json.dumps([1, 2]))
    assert read_result(rdir) is None
    (rdir / "result.json").write_text(
        json.dumps(
            {"run_id": "x", "spec": "s", "profile": "p", "arm": "a", "seed": 0, "state": "exploded"}
        )
    )
    assert read_result(rdir) is None


# ----------------------------------------------------------------------------- issue 27: reliability


def test_finished_runs_with_damaged_stages_are_recomputed_by_a_plain_run(
    done_root, tmp_path: Path, capsys
) -> None:
    """A bit-flipped samples file (same size), an edited scores.json and a deleted shared sample
    stage of finished runs: `run` (no flag) names each damaged run and stage, recomputes them, and
    `report` beforehand flags them; the results are the undamaged ones."""
    spec_path, root, metrics = copy_of(done_root, tmp_path)
    df = load_results(root, "tiny", "default")
    rdir = base_dir(root)
    samples = (rdir / "stages" / "sample").resolve() / "samples.safetensors"
    raw = bytearray(samples.read_bytes())
    raw[-64:] = bytes(b ^ 0xFF for b in raw[-64:])
    samples.write_bytes(bytes(raw))
    ref = Path(df.loc[df["reference"].notna(), "run_dir"].iloc[0])
    scores = ref / "stages" / "reference" / "scores.json"
    scores.write_text(scores.read_text().replace("0", "1", 1))
    code, out, err = cli(
        capsys, "report", spec_path, "--runs-root", root, "--reports-dir", tmp_path / "rep"
    )
    text = (tmp_path / "rep" / "tiny" / "default" / "report.md").read_text()
    assert (
        code == 0
        and "2 damaged" in text
        and f"({rdir.name}): sample" in text
        and f"({ref.name}): reference" in text
    )
    assert (
        "(prompts, row 1: '" in text
    )  # each frame strip is captioned with the prompts of its rows
    code, out, err = cli(
        capsys, "run", spec_path, "--runs-root", root, "--no-report", "--no-progress"
    )
    assert code == 0 and "2 dispatched" in out, err
    assert f"run {rdir.name} (base, seed 0): finished, but its stage(s) sample are damaged" in err
    assert f"run {ref.name} " in err and "stage(s) reference are damaged" in err
    assert metrics_by_arm(root) == metrics
    shutil.rmtree((rdir / "stages" / "sample").resolve())  # the shared stage directory itself
    code, out, err = cli(
        capsys, "run", spec_path, "--runs-root", root, "--no-report", "--no-progress"
    )
    assert (
        code == 0 and "1 dispatched" in out and "stage(s) sample are damaged or missing" in err
    ), err
    assert metrics_by_arm(root) == metrics


def test_a_bit_flipped_tokenizer_cache_is_rebuilt_with_one_plain_line(
    done_root, tmp_path: Path, capsys
) -> None:
    spec_path, root, metrics = copy_of(done_root, tmp_path)
    (tok,) = (root / "_cache" / "shapes").glob("tokenizer-*.safetensors")
    raw = bytearray(tok.read_bytes())
    raw[-64:] = bytes(b ^ 0x5A for b in raw[-64:])
    tok.write_bytes(bytes(raw))
    code, out, err = cli(
        capsys, "reset", spec_path, "--runs-root", root, "--run", base_dir(root).name
    )
    assert code == 0, err
    code, out, err = cli(
        capsys, "run", spec_path, "--runs-root", root, "--no-report", "--no-progress"
    )
    assert code == 0, err
    lines = [line for line in err.splitlines() if str(tok) in line]
    assert lines == [
        f"{tok}: damaged cache (its tensors differ from their stored sha256); rebuilding it"
    ]
    assert "Warning" not in err
    assert metrics_by_arm(root) == metrics


def test_a_spec_folder_linked_out_of_the_runs_root_is_refused(tmp_path: Path, capsys) -> None:
    spec_path = tiny_spec(tmp_path / "s.yaml")
    root, outside = tmp_path / "runs", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "tiny").symlink_to(outside, target_is_directory=True)
    code, out, err = cli(
        capsys, "run", spec_path, "--runs-root", root, "--no-report", "--no-progress"
    )
    assert (
        code == 2
        and f"{root / 'tiny'}: expected a folder inside the runs root" in err
        and str(outside) in err
    )
    assert list(outside.iterdir()) == []


def test_the_index_follows_the_umask(tmp_path: Path) -> None:
    code = (
        "import os, stat, sys; os.umask(0o002); from harness.store import INDEX, reindex; "
        "reindex(sys.argv[1]); print(oct(stat.S_IMODE(os.stat(os.path.join(sys.argv[1], INDEX)).st_mode)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["0o664"]


def test_naming_the_arms_of_finished_runs_relabels_them_without_recomputing(
    done_root, tmp_path: Path, capsys
) -> None:
    """`labels:` added to a spec whose runs are done: the same runs (ids unchanged), stored under their
    new name by the next `run`, nothing dispatched, so `check` and `status` see the names too."""
    spec_path, root, metrics = copy_of(done_root, tmp_path)
    named = tmp_path / "named.yaml"
    data = yaml.safe_load(spec_path.read_text())
    data["zip"] = [
        {"train.steps": [STEPS], "labels": ["six steps"]}
    ]  # the base's value: the same run
    named.write_text(yaml.safe_dump(data))
    manifest = (
        root / "tiny" / "default" / "manifest.json"
    )  # the runs pass to the edited copy of the spec
    manifest.write_text(json.dumps({**read_json(manifest), "source": str(named.resolve())}))
    code, out, err = cli(capsys, "run", named, "--runs-root", root, "--no-report", "--no-progress")
    assert code == 0 and "0 dispatched" in out, out + err
    after = metrics_by_arm(root)
    assert after["six steps"] == metrics["base"] and "base" not in after
