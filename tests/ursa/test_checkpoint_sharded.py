"""Sharded checkpoints (`train.checkpoint_format: sharded`, torch.distributed.checkpoint) in one
process: the files, a bit-identical resume, either format resuming the other, load_result, and
damaged shards falling back to the previous checkpoint or a fresh start. Resharding across process
counts (2 -> 1, 1 -> 2): tests/ursa/test_distributed.py."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from tiny_training import K, dataset, model
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.api import CheckpointException

from ursa.ema import EMA
from ursa.model import URSAModel
from ursa.parallel import sharded_state
from ursa.path_config import build_path
from ursa.train import TrainResult, load_result, train
from ursa.train_config import TrainConfig

CFG = dict(steps=8, batch_size=2, warmup_steps=2, checkpoint_every=3, p_first=0.5, ema_decay=0.8)


def fit(
    out: Path,
    m: URSAModel | None = None,
    stop_after: int | None = None,
    steps: list | None = None,
    **kw,
) -> TrainResult:
    """train(); the steps it runs are appended to `steps`."""
    return train(
        m or model(),
        build_path("mixture", vocab_size=K),
        dataset(),
        TrainConfig(**{**CFG, **kw}),
        out,
        progress=False,
        stop_after=stop_after,
        on_step=None if steps is None else lambda n, _: steps.append(n),
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[TrainResult, dict]:
    """The uninterrupted run (full checkpoints): its result and final weights."""
    m = model()
    return fit(tmp_path_factory.mktemp("straight") / "run", m), {
        k: v.clone() for k, v in m.state_dict().items()
    }


def same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_sharded_checkpoints_resume_bit_identically_and_either_format_resumes_the_other(
    tmp_path: Path, straight
) -> None:
    ref, weights = straight
    out = tmp_path / "sharded"
    fit(
        out, stop_after=5, checkpoint_format="sharded"
    )  # killed after step 5: the checkpoint of step 3
    ck = out / "checkpoint"
    assert sorted(p.name for p in ck.iterdir()) == [
        ".metadata",
        "__0_0.distcp",
        "state.pt",
    ]  # no model.safetensors
    keys = set(FileSystemReader(ck).read_metadata().state_dict_metadata)
    assert {"model.head.weight", "optimizer.state.head.weight.exp_avg", "ema.head.weight"} <= keys
    assert "optimizer" not in torch.load(
        ck / "state.pt", weights_only=False
    )  # the optimizer is in the shards
    m = model(seed=7)  # other weights: everything must come from the checkpoint
    res = fit(out, m, checkpoint_format="sharded")
    assert res.losses == ref.losses and same(m.state_dict(), weights)
    assert same(res.ema, ref.ema)
    # the last checkpoint also holds the full weights (what the launcher of a distributed run reads)
    assert (ck / "model.safetensors").is_file() and (ck / ".metadata").is_file()
    assert same(URSAModel.from_pretrained(ck).state_dict(), weights)
    done = load_result(out)  # EMA read back from the shards, in this process
    assert done.losses == ref.losses and done.steps == 8 and same(done.ema, ref.ema)

    for first, then in (
        ("full", "sharded"),
        ("sharded", "full"),
    ):  # the format is read from the files
        out = tmp_path / f"{first}_then_{then}"
        fit(out, stop_after=5, checkpoint_format=first)
        m = model(seed=7)
        res = fit(out, m, checkpoint_format=then)
        assert (
            res.losses == ref.losses and same(m.state_dict(), weights) and same(res.ema, ref.ema)
        ), (first, then)
        assert (out / "checkpoint" / ".metadata").is_file() == (then == "sharded")


def _corrupt_param_groups(ck: Path) -> None:
    """Zero the bytes of the optimizer's param_groups items: the files keep their sizes, so only reading
    them fails, and torch.distributed.checkpoint reads them after the tensors."""
    with open(ck / "__0_0.distcp", "r+b") as f:
        for index, info in FileSystemReader(ck).read_metadata().storage_data.items():
            if index.fqn.startswith("optimizer.param_groups."):
                f.seek(info.offset)
                f.write(bytes(info.length))
    probe = model(
        seed=3
    )  # what a plain dcp.load does with such a file: a partial load, then the error
    before = probe.head.weight.detach().clone()
    with pytest.raises(CheckpointException), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="torch.distributed is disabled"
        )  # one process: it is
        dcp.load(
            sharded_state(probe, torch.optim.AdamW(probe.parameters()), EMA(probe, 0.5)),
            checkpoint_id=ck,
            no_dist=True,
        )
    assert not torch.equal(probe.head.weight, before)


@pytest.mark.parametrize(
    "damage", ["truncated_shard", "missing_metadata", "unreadable_item_and_no_older"]
)
def test_a_damaged_sharded_checkpoint_falls_back_to_the_older_one(
    damage: str, tmp_path: Path, straight, capsys
) -> None:
    ref, weights = straight
    out = tmp_path / "b"
    fit(out, stop_after=7, checkpoint_format="sharded")
    ck = out / "checkpoint"  # step 6
    if (
        damage != "unreadable_item_and_no_older"
    ):  # as a writer killed between parking and replacing leaves it
        fit(tmp_path / "c", stop_after=4, checkpoint_format="sharded")
        os.replace(tmp_path / "c" / "checkpoint", out / "checkpoint.old")  # step 3
    if damage == "truncated_shard":
        shard = ck / "__0_0.distcp"
        shard.write_bytes(shard.read_bytes()[:1000])
    elif damage == "missing_metadata":
        (ck / ".metadata").unlink()
    else:
        _corrupt_param_groups(ck)
    m, steps = model(), []
    res = fit(out, m, steps=steps, checkpoint_format="sharded")
    err = capsys.readouterr().err
    assert f"{ck}: damaged checkpoint" in err
    want = {
        "truncated_shard": "__0_0.distcp: 1000 bytes, expected at least",
        "missing_metadata": "lacks .metadata",
        "unreadable_item_and_no_older": "CheckpointException on rank 0: UnpicklingError",
    }[damage]
    assert want in err, err
    # from step 3, or (no older one) from the start: the half-read shard changed neither the model nor AdamW
    assert steps == list(range(1 if damage == "unreadable_item_and_no_older" else 4, 9))
    assert res.losses == ref.losses and same(m.state_dict(), weights) and same(res.ema, ref.ema)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_load_result_names_a_damaged_sharded_checkpoint(tmp_path: Path) -> None:
    fit(tmp_path, stop_after=4, checkpoint_format="sharded")
    (tmp_path / "checkpoint" / "__0_0.distcp").write_bytes(b"")
    with pytest.raises(ValueError, match=r"checkpoint: __0_0\.distcp: 0 bytes, expected at least"):
        load_result(tmp_path)
