"""ShardDataset: memory-mapped token shards read as a ursa.train.ClipSource."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ursa.model import URSAConfig, URSAModel
from ursa.path_config import build_path
from ursa.shards import ShardDataset, pack_rows, shard_name, write_index, write_shard
from ursa.train import ClipSource, TokenDataset, train
from ursa.train_config import TrainConfig

K, LATENT = 32, (2, 3, 3)
COUNTS = [4, 0, 4, 3]  # an empty shard (every item of it skipped) is legal


def clips(n: int = 11, seed: int = 0) -> TokenDataset:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 6, (n,), generator=g)
    mask = torch.arange(5)[None] < lengths[:, None]  # (N, 5)
    text = torch.randint(1, 16, (n, 5), generator=g) * mask
    return TokenDataset(text, mask, torch.randint(0, K, (n, *LATENT), generator=g))


def write_shards(directory: Path, data: TokenDataset) -> Path:
    start = 0
    for k, n in enumerate(COUNTS):
        part = data.select(torch.arange(start, start + n))
        write_shard(
            directory / shard_name(k), pack_rows(part.text_ids, part.text_mask, part.visual_ids)
        )
        start += n
    low, high = data.id_range()
    write_index(directory, COUNTS, data.text_ids.shape[1], data.latent_shape, (low, high))
    return directory


def test_select_reads_the_same_clips_as_memory(tmp_path: Path) -> None:
    data = clips()
    ds = ShardDataset(write_shards(tmp_path, data))
    assert isinstance(ds, ClipSource) and len(ds) == 11 and ds.latent_shape == LATENT
    assert ds.id_range() == data.id_range()
    index = torch.tensor([10, 0, 4, 7, 7, 3, 8])  # across shards, repeated, unordered
    got, want = ds.select(index), data.select(index)
    for name in ("text_ids", "text_mask", "visual_ids"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    rows = np.load(tmp_path / shard_name(2), mmap_mode="r")  # any reader can map a shard
    assert rows.shape == (4, 2 * 5 + 18) and torch.equal(
        torch.from_numpy(np.array(rows[0, 10:])).long(), data.visual_ids[4].flatten()
    )
    with pytest.raises(IndexError, match=r"expected clip indices in \[0, 11\), got 11"):
        ds.select(torch.tensor([11]))


def test_training_from_shards_equals_training_in_memory(tmp_path: Path) -> None:
    """Same clips, same seed: the loop's batches, and so every loss, are bit-identical."""
    data = clips()
    shards = ShardDataset(write_shards(tmp_path / "shards", data))
    cfg = TrainConfig(steps=4, batch_size=3, warmup_steps=1, checkpoint_every=10, seed=3)
    losses = []
    for source, out in ((data, "mem"), (shards, "disk")):
        model = URSAModel(
            URSAConfig.preset("tiny", text_vocab_size=16, visual_vocab_size=K), seed=0
        )
        losses.append(
            train(
                model,
                build_path("mixture", vocab_size=K),
                source,
                cfg,
                tmp_path / out,
                progress=False,
            ).losses
        )
    assert losses[0] == losses[1] and len(losses[0]) == 4


def test_damaged_shards_and_index_are_named(tmp_path: Path) -> None:
    write_shards(tmp_path, clips())
    path = tmp_path / shard_name(2)
    path.write_bytes(path.read_bytes()[:-40])  # truncated
    ds = ShardDataset(tmp_path)
    ds.select(torch.tensor([0, 3]))  # other shards still read
    with pytest.raises(ValueError, match=rf"{shard_name(2)}: expected a shard of 4 rows"):
        ds.select(torch.tensor([5]))
    index = json.loads((tmp_path / "index.json").read_text())
    (tmp_path / "index.json").write_text(json.dumps({**index, "num_clips": 12}))
    with pytest.raises(ValueError, match="num_clips 12 does not match the shards' counts \\(11\\)"):
        ShardDataset(tmp_path)
    (tmp_path / "index.json").write_text("{")
    with pytest.raises(
        ValueError, match="index.json: expected the index of a complete shard directory"
    ):
        ShardDataset(tmp_path)
