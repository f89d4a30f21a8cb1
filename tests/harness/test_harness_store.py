"""Run store: atomic writes, SQLite index under concurrent writers, load_results, export."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pandas as pd
import pytest

from harness.records import RunResult, RunState
from harness.store import (
    export_results,
    load_results,
    query_index,
    read_json,
    run_dir,
    write_manifest,
    write_result,
)
from ursa.io import atomic_write_bytes, atomic_write_json


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "x.json"
    atomic_write_json(target, {"v": 1})
    atomic_write_json(target, {"v": 2})
    assert read_json(target) == {"v": 2}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_failed_write_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # type: ignore[arg-type]  # fails mid-write
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def _writer(root: str, worker: int) -> None:
    for i in range(20):
        rid = f"w{worker}-{i}"
        write_result(
            root,
            run_dir(root, "s", "smoke", rid),
            RunResult(
                run_id=rid,
                spec="s",
                profile="smoke",
                arm=f"a{worker}",
                seed=i,
                state=RunState.DONE,
                metrics={"m": float(i)},
                params={"train.shift": worker},
            ),
        )


def test_index_survives_concurrent_writers(tmp_path: Path) -> None:
    procs = [
        mp.get_context("spawn").Process(target=_writer, args=(str(tmp_path), w)) for w in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    idx = query_index(tmp_path, "s", "smoke")
    assert len(idx) == 60 and set(idx["state"]) == {"done"}


def test_load_results_follows_manifest_and_exports(tmp_path: Path) -> None:
    _writer(str(tmp_path), 0)
    write_manifest(tmp_path, "s", "smoke", ["w0-1", "w0-2"], "<memory>")
    df = load_results(tmp_path, "s", "smoke")
    assert list(df["run_id"]) == ["w0-1", "w0-2"]
    for col in (
        "run_id",
        "spec",
        "profile",
        "arm",
        "seed",
        "state",
        "param.train.shift",
        "metric.m",
    ):
        assert col in df.columns
    assert df["metric.m"].tolist() == [1.0, 2.0]
    for suffix in (".csv", ".parquet"):
        out = export_results(df, tmp_path / f"r{suffix}")
        back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
        assert back["run_id"].tolist() == ["w0-1", "w0-2"]
    with pytest.raises(ValueError, match="csv or .parquet"):
        export_results(df, tmp_path / "r.txt")
    assert os.path.exists(tmp_path / "index.sqlite")


def test_arms_sort_numerically(tmp_path: Path) -> None:
    arms = [
        "shift=10",
        "shift=2",
        "shift=1.5",
        "shift=1e-3",
        "c=10, alpha=0.9",
        "c=3, alpha=0.9",
        "c=3, alpha=0.25",
    ]
    ids = []
    for i, arm in enumerate(arms):
        for seed in (1, 0):
            rid = f"r{i}-{seed}"
            ids.append(rid)
            write_result(
                tmp_path,
                run_dir(tmp_path, "s", "smoke", rid),
                RunResult(
                    run_id=rid, spec="s", profile="smoke", arm=arm, seed=seed, state=RunState.DONE
                ),
            )
    write_manifest(tmp_path, "s", "smoke", ids, "<memory>")
    df = load_results(tmp_path, "s", "smoke")
    assert list(dict.fromkeys(df["arm"])) == [
        "c=3, alpha=0.25",
        "c=3, alpha=0.9",
        "c=10, alpha=0.9",
        "shift=1e-3",
        "shift=1.5",
        "shift=2",
        "shift=10",
    ]
    assert list(df["seed"][:2]) == [0, 1]
