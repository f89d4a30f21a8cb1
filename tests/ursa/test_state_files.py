"""Files that outlive a kill: unique temp names that say who wrote them, full disks named by path,
losses.csv with one line ending after a resume, damaged checkpoints that cost steps, not runs."""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import subprocess
import time
from pathlib import Path

import pytest
import torch
from tiny_training import K, dataset, model

import ursa.io
import ursa.train
from ursa.io import atomic_write, atomic_write_bytes, stale_temp, temp_tag, untagged_temp
from ursa.path_config import build_path
from ursa.train import train
from ursa.train_config import TrainConfig

CFG = TrainConfig(steps=8, batch_size=2, warmup_steps=2, checkpoint_every=3)


def straight(tmp_path: Path) -> tuple[list[float], dict]:
    m = model()
    res = train(
        m,
        build_path("mixture", vocab_size=K),
        dataset(),
        CFG,
        tmp_path / "straight",
        progress=False,
    )
    return res.losses, m.state_dict()


def same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- temp names


def test_temp_names_carry_pid_and_host_and_tell_stale_from_live(tmp_path: Path) -> None:
    seen = []
    atomic_write(tmp_path / "x.bin", lambda tmp: (seen.append(tmp.name), tmp.write_bytes(b"1")))
    assert seen[0].startswith(f".x.bin.{os.getpid()}-{ursa.io._HOST}") and seen[0].endswith(".tmp")
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine, theirs = (
        tmp_path / f".a.{temp_tag()}.tmp",
        tmp_path / f".a.{dead.pid}-{ursa.io._HOST}0123abcd.tmp",
    )
    other_host = (
        tmp_path / f".a.{dead.pid}-{'ffff' if ursa.io._HOST != 'ffff' else 'eeee'}0123abcd.tmp"
    )
    legacy = tmp_path / ".samples.safetensors.tmp"
    for p in (mine, theirs, other_host, legacy):
        p.write_bytes(b"")
    assert not stale_temp(mine) and stale_temp(theirs)
    assert not stale_temp(other_host)  # another host's writer may be alive: only once old
    assert stale_temp(other_host, now=time.time() + 2 * ursa.io.FOREIGN_TEMP_AGE_S)
    assert not stale_temp(legacy) and untagged_temp(legacy) and not untagged_temp(theirs)
    assert not stale_temp(tmp_path / "result.json")


def _hammer(path: str, worker: int) -> None:
    for i in range(40):
        atomic_write(Path(path), lambda tmp: tmp.write_bytes(f"{worker}:{i}".encode() * 1000))  # noqa: B023 - called at once


def test_concurrent_writers_of_one_file_never_collide(tmp_path: Path) -> None:
    procs = [
        mp.get_context("fork").Process(target=_hammer, args=(str(tmp_path / "t.bin"), w))
        for w in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    text = (tmp_path / "t.bin").read_text()
    assert len(set(text.split(":")[0] for text in [text])) == 1 and len(text) % 1000 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["t.bin"]


# ----------------------------------------------------------------------------- full disk


def test_a_full_disk_names_the_file_whoever_writes(tmp_path: Path) -> None:
    target = tmp_path / "m.safetensors"

    def kernel_full(tmp: Path) -> None:
        raise OSError(
            errno.ENOSPC, "No space left on device"
        )  # as write(2) reports it: no file name

    def library_full(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise RuntimeError(
            "Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
            'message: "No space left on device" })'
        )  # safetensors' wording

    for writer in (kernel_full, library_full):
        with pytest.raises(OSError) as info:
            atomic_write(target, writer)
        assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
        assert "No space left on device" in str(info.value) and str(target) in str(info.value)
    with pytest.raises(ValueError, match="unrelated"):  # other errors pass through untouched
        atomic_write(target, lambda tmp: (_ for _ in ()).throw(ValueError("unrelated")))
    assert list(tmp_path.iterdir()) == []


def test_dev_full_write_is_enospc_with_the_path(tmp_path: Path, monkeypatch) -> None:
    real = ursa.io._open_temp

    def open_temp(path: Path, suffix: str):
        fd, tmp = real(path, suffix)
        os.close(fd)
        tmp.unlink()
        tmp.symlink_to("/dev/full")
        return os.open(tmp, os.O_WRONLY), tmp

    monkeypatch.setattr(ursa.io, "_open_temp", open_temp)
    with pytest.raises(OSError, match="No space left on device") as info:
        atomic_write_bytes(tmp_path / "r.json", b"{}" * 10000)
    assert info.value.filename == str(tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_that_does_not_fit_fails_clean(tmp_path: Path, monkeypatch) -> None:
    def full(obj, f, *a, **k):
        Path(f).write_bytes(b"half a checkpoint")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
            "data/0: No space left on device"
        )

    monkeypatch.setattr(ursa.train.torch, "save", full)
    out = tmp_path / "run"
    with pytest.raises(OSError) as info:
        train(model(), build_path("mixture", vocab_size=K), dataset(), CFG, out, progress=False)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(out / "checkpoint")
    assert sorted(p.name for p in out.iterdir()) == ["losses.csv"]  # no temp directory left


# ----------------------------------------------------------------------------- losses.csv and resume


def test_losses_csv_has_only_newlines_after_a_kill_and_resume(tmp_path: Path) -> None:
    losses, _ = straight(tmp_path)
    out = tmp_path / "b"
    train(
        model(),
        build_path("mixture", vocab_size=K),
        dataset(),
        CFG,
        out,
        progress=False,
        stop_after=5,
    )
    raw = (out / "losses.csv").read_bytes()
    (out / "losses.csv").write_bytes(raw.replace(b"\n", b"\r\n"))  # as the old csv.writer rows were
    train(model(seed=9), build_path("mixture", vocab_size=K), dataset(), CFG, out, progress=False)
    raw = (out / "losses.csv").read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    assert raw == (tmp_path / "straight" / "losses.csv").read_bytes()
    assert [float(line.split(",")[1]) for line in raw.decode().splitlines()[1:]] == losses


@pytest.mark.parametrize("damage", ["state", "weights", "both_with_old"])
def test_a_damaged_checkpoint_costs_steps_not_the_run(damage: str, tmp_path: Path, capsys) -> None:
    losses, weights = straight(tmp_path)
    out = tmp_path / "b"
    train(
        model(),
        build_path("mixture", vocab_size=K),
        dataset(),
        CFG,
        out,
        progress=False,
        stop_after=7,
    )
    ck = out / "checkpoint"  # step 6
    if (
        damage == "both_with_old"
    ):  # killed between parking the old checkpoint and moving the new one in
        train(
            model(),
            build_path("mixture", vocab_size=K),
            dataset(),
            CFG.model_copy(update={"steps": 8}),
            tmp_path / "c",
            progress=False,
            stop_after=4,
        )
        os.replace(tmp_path / "c" / "checkpoint", out / "checkpoint.old")  # step 3
    if damage in ("state", "both_with_old"):
        (ck / "state.pt").write_bytes((ck / "state.pt").read_bytes()[:300])
    if damage in ("weights", "both_with_old"):
        (ck / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    m = model(
        seed=5 if damage == "both_with_old" else 0
    )  # from scratch, a run starts from its seeded init
    res = train(m, build_path("mixture", vocab_size=K), dataset(), CFG, out, progress=False)
    assert f"{ck}: damaged checkpoint" in capsys.readouterr().err
    assert res.losses == losses and same_weights(m.state_dict(), weights)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
