"""Pre-tokenisation of a video folder into shards: skip reasons, resume after a kill, the CLI."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "video_folder"))
from video_folder_fixtures import BAD, EVAL_BAD, GOOD_TRAIN, build_folder, folder_spec  # noqa: E402

from harness.cli import main  # noqa: E402
from harness.data import load_data  # noqa: E402
from harness.expand import expand  # noqa: E402
from harness.identity import data_config  # noqa: E402
from harness.specfile import load_spec  # noqa: E402
from harness.token_shards import tokenize  # noqa: E402
from ursa.shards import INDEX, ShardDataset  # noqa: E402
from ursa.tokenizers.text import pad_batch  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "ablations" / "examples" / "video_folder.yaml"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return build_folder(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def spec(folder: Path, tmp_path_factory) -> Path:
    return folder_spec(tmp_path_factory.mktemp("spec") / "vf_tiny.yaml", folder)


def data_of(spec: Path, runs_root: Path):
    return load_data(data_config(expand(load_spec(spec), "default")[0].config), runs_root)


def test_shards_hold_the_usable_clips_and_every_skip_reason(spec: Path, tmp_path: Path) -> None:
    """3 clips per shard, 2 bad items among them found by decoding; the shards hold exactly what
    decoding and encoding the usable clips in memory gives."""
    data = data_of(spec, tmp_path)
    ds = ShardDataset(tokenize(data, tmp_path, workers=2, progress=False))
    skipped = [
        json.loads(line) for line in (ds.directory / "skipped.jsonl").read_text().splitlines()
    ]
    assert {r["key"] for r in skipped} == set(BAD) and len(skipped) == len(BAD)
    for row in skipped:
        assert BAD[row["key"]] in row["reason"], row
    captions, videos = data.benchmark.training_set()  # the same clips, decoded in memory
    assert len(ds) == GOOD_TRAIN and ds.captions() == captions
    rows = [data.text([c])[0][0].tolist() for c in captions]
    text_ids, text_mask = pad_batch(rows, data.text.pad_id, ds.text_length)
    batch = ds.select(torch.arange(len(ds)))
    assert torch.equal(batch.visual_ids, data.tokenizer.encode(videos))
    assert torch.equal(batch.text_ids, text_ids) and torch.equal(batch.text_mask, text_mask)
    assert ds.latent_shape == data.latent_shape() == (4, 4, 4)


def test_a_killed_tokenisation_resumes_per_shard_with_identical_bytes(
    spec: Path, tmp_path: Path
) -> None:
    whole = tokenize(data_of(spec, tmp_path / "a"), tmp_path / "a", progress=False)
    data = data_of(spec, tmp_path / "b")
    written: list[int] = []

    def kill_after_1(k: int) -> None:
        written.append(k)
        if k == 1:
            raise KeyboardInterrupt("killed after shard 1")

    with pytest.raises(KeyboardInterrupt):
        tokenize(data, tmp_path / "b", progress=False, on_shard=kill_after_1)
    out = tmp_path / "b" / whole.relative_to(tmp_path / "a")
    assert not (out / INDEX).exists() and written == [0, 1]
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    import subprocess

    from ursa import io

    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = (
        out / f".shard-00002.npy.{dead.pid}-{io._HOST}deadbeef.tmp"
    )  # what a SIGKILLed writer leaves
    leftover.write_bytes(b"half a shard")
    tokenize(data, tmp_path / "b", progress=False, on_shard=written.append)
    assert written == [0, 1, 2, 3]  # only the missing shards were built
    assert not leftover.exists()
    assert all(out.joinpath(name).stat().st_mtime_ns == t for name, t in before.items())
    files = sorted(p.name for p in whole.iterdir())
    assert files == sorted(p.name for p in out.iterdir()) and "shard-00003.npy" in files
    for name in files:
        assert (whole / name).read_bytes() == (out / name).read_bytes(), name


def _tokenize_in_process(spec: Path, root: Path, log: Path, name: str, started, slow: bool) -> None:
    """A worker of the lock test: tokenise, logging every shard it writes; `slow` holds shard 0 a while."""

    def on_shard(k: int) -> None:
        with open(log, "a") as f:
            f.write(f"{name} wrote {k}\n")
        if slow and k == 0:
            started.set()
            time.sleep(1.0)  # the other process arrives while this one holds the lock

    if not slow:
        started.wait(60)
    out = tokenize(data_of(spec, root), root, progress=False, on_shard=on_shard)
    with open(log, "a") as f:
        f.write(f"{name} done {out.name}\n")


def test_two_processes_tokenise_once_the_second_waits_and_reads(spec: Path, tmp_path: Path) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    started, log = ctx.Event(), tmp_path / "log.txt"
    procs = [
        ctx.Process(
            target=_tokenize_in_process, args=(spec, tmp_path, log, name, started, name == "a")
        )
        for name in ("a", "b")
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    lines = log.read_text().splitlines()
    assert [line for line in lines if " wrote " in line] == [
        f"a wrote {k}" for k in range(4)
    ]  # all by a
    assert lines[-1].startswith("b done ")  # b waited for a's lock, then read a's finished shards
    assert lines[-2].startswith("a done ") and lines[-1].split()[-1] == lines[-2].split()[-1]
    assert len(ShardDataset(tmp_path / "_cache" / "shards" / lines[-1].split()[-1])) == GOOD_TRAIN


def test_cli_validate_tokenize_and_run_a_tiny_spec(spec: Path, tmp_path: Path, capsys) -> None:
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    assert main(["validate", str(spec)]) == 0
    assert main(["tokenize", str(spec), "--runs-root", str(runs), "--no-progress"]) == 0
    assert "video_folder (data " in capsys.readouterr().out
    assert (
        main(
            [
                "run",
                str(spec),
                "--runs-root",
                str(runs),
                "--reports-dir",
                str(reports),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        "3 done, 0 not done" in capsys.readouterr().out
    )  # the run + references real and reconstruction
    results = [
        json.loads(p.read_text()) for p in (runs / "vf_tiny" / "default").glob("*/result.json")
    ]
    metrics = next(r["metrics"] for r in results if r.get("reference") is None)  # the trained run
    assert 0 <= metrics["temporal_flickering"] <= 1 and metrics["denoise_ce"] > 0
    assert not list(
        runs.glob("_cache/data/train-*")
    )  # trained from the shards, not an in-memory copy
    # the held-out clip only decoding finds bad: recorded in every run's result, counted in the report
    assert all([r["key"] for r in res["skipped"]] == list(EVAL_BAD) for res in results), results
    report = (reports / "vf_tiny" / "default" / "report.md").read_text()
    assert (
        "Held-out data: 1 item left out of every suite the runs are scored on (clips/eval_truncated.mp4: "
        "unreadable video" in report
    ), report


def one_paragraph(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    return err


def test_bad_options_and_nothing_usable_exit_2(folder: Path, tmp_path: Path, capsys) -> None:
    bad = folder_spec(tmp_path / "bad.yaml", folder, frames=0)
    assert main(["validate", str(bad)]) == 2
    assert "benchmark.frames): expected a value greater than or equal to 1" in one_paragraph(capsys)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "captions.csv").write_text("path,caption\ngone.mp4,a caption\n")
    assert main(["validate", str(folder_spec(tmp_path / "e.yaml", tmp_path / "empty"))]) == 2
    assert "at least one usable training clip" in one_paragraph(capsys)
    corrupt = (
        tmp_path / "corrupt"
    )  # files exist but none decodes: found by tokenize, before training
    corrupt.mkdir()
    for i in range(2):
        (corrupt / f"c{i}.mp4").write_bytes(b"\x00not an mp4" * 50)
    (corrupt / "captions.csv").write_text("path,caption\nc0.mp4,one\nc1.mp4,two\n")
    spec = folder_spec(tmp_path / "c.yaml", corrupt, eval_size=1)
    assert (
        main(["tokenize", str(spec), "--runs-root", str(tmp_path / "runs"), "--no-progress"]) == 2
    )
    msg = one_paragraph(capsys)
    assert (
        "expected at least one usable training clip, got none" in msg and "unreadable video" in msg
    )
    assert "skipped.jsonl" in msg


def test_the_example_spec_validates_on_a_folder(folder: Path, tmp_path: Path) -> None:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["base"]["benchmark"]["root"] = str(folder)
    (tmp_path / "example.yaml").write_text(yaml.safe_dump(spec))
    assert main(["validate", str(tmp_path / "example.yaml"), "--profile", "smoke"]) == 0
