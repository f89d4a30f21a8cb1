"""benchmarks.perf.data_bench on tiny inputs: the in-memory copy equals the shards, every figure is
measured (a real training subprocess for the RSS), and the suite and its target are registered."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from benchmarks.perf import __main__ as perf
from benchmarks.perf import data_bench
from benchmarks.perf.targets import TARGETS, verdicts
from ursa.shards import ShardDataset


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return data_bench.write_synthetic(
        tmp_path_factory.mktemp("shards"), 300, (1, 4, 4), shard_size=128
    )


def test_in_memory_copy_and_loader_figures(shards: Path) -> None:
    ds = ShardDataset(shards)
    memory = data_bench.in_memory(ds)
    every = ds.select(torch.arange(len(ds)))
    assert len(ds) == 300 and len(ds.index["shards"]) == 3
    for a, b in (
        (memory.text_ids, every.text_ids),
        (memory.text_mask, every.text_mask),
        (memory.visual_ids, every.visual_ids),
    ):
        assert torch.equal(a, b)
    assert int(every.visual_ids.max()) < data_bench.VOCAB and bool(every.text_mask.all())
    figures = data_bench.loader_overhead(shards, batches=20)
    assert (
        figures["clips"] == 300
        and figures["shards_ms_per_batch"] > 0
        and figures["memory_ms_per_batch"] > 0
    )
    assert math.isclose(
        figures["overhead_ms_per_batch"],
        figures["shards_ms_per_batch"] - figures["memory_ms_per_batch"],
        abs_tol=1e-3,
    )


def test_training_subprocess_reports_its_peak_rss(shards: Path) -> None:
    figures = data_bench._child("shards", shards, 1)  # the real child process a perf run starts
    assert 100 < figures["peak_rss_mb"] < 10_000 and figures["train_s"] > 0


def test_tokenize_throughput_on_a_generated_folder(tmp_path: Path) -> None:
    figures = data_bench.tokenize_throughput(tmp_path, files=8, workers=(2,))
    w = figures["workers_2"]
    assert (
        w["items"] == 6 and 0 < w["clips"] <= w["items"] and w["clips_per_s"] > 0
    )  # 8 files, 2 held out


def test_suite_and_target_registered() -> None:
    assert perf.SUITES["data"] == "benchmarks.perf.data_bench"
    assert any(t.suite == "data" for t in TARGETS)
    flat = {"suites": {"data": {"rss": {"shards_growth_ratio": 1.2}}}}
    assert [r[-1] for r in verdicts(flat) if r[0] == "data"] == ["missed"]
