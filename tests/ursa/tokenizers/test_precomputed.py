"""PrecomputedTokenizer on folders written here: shards of ids + captions, a (K, D) codebook, and
optional TorchScript decoder / encoder (the scripted Cosmos-contract modules of test_cosmos)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cosmos import clips, script_checkpoint

from ursa.shards import ShardDataset
from ursa.tokenizers.cosmos import CosmosTokenizer, MissingFilesError
from ursa.tokenizers.fsq import fsq_codebook
from ursa.tokenizers.precomputed import PrecomputedTokenizer, write_precomputed
from ursa.tokenizers.text import HFTextTokenizer

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
LEVELS = (4, 4, 3)  # K = 48


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """5 clips of (2, 2, 2) ids in 2 shards, the FSQ codebook of LEVELS, and a scripted decoder."""
    root = tmp_path_factory.mktemp("pre")
    ids = torch.randint(48, (5, 2, 2, 2), generator=torch.Generator().manual_seed(0))
    write_precomputed(
        root,
        ids,
        [f"clip {i}" for i in range(5)],
        fsq_codebook(LEVELS),
        temporal_compression=4,
        spatial_compression=8,
        shard_size=3,
    )
    ckpt = script_checkpoint(root / "ckpt", levels=LEVELS)
    (root / "decoder.jit").write_bytes((ckpt / "decoder.jit").read_bytes())
    torch.save(ids, root / "ids.pt")
    return root


def test_shards_codebook_and_decoder_round_trip(folder: Path) -> None:
    tok = PrecomputedTokenizer(folder, batch_size=2)
    ids = torch.load(folder / "ids.pt")
    assert tok.vocab_size == 48 and torch.equal(tok.codebook_embeddings(), fsq_codebook(LEVELS))
    assert [p.name for p in tok.shards()] == ["shard-00000.npy", "shard-00001.npy"]
    captions, read = tok.read_all()
    assert (
        captions == [f"clip {i}" for i in range(5)]
        and torch.equal(read, ids)
        and read.dtype == torch.long
    )
    assert tok.latent_shape(5, 16, 16) == (2, 2, 2)
    video = tok.decode(ids)
    assert video.shape == (5, 5, 16, 16, 3) and video.dtype == torch.uint8
    # the same TorchScript decoder through the Cosmos loader decodes the same pixels
    cosmos = CosmosTokenizer(
        folder / "ckpt", levels=list(LEVELS), temporal_compression=4, spatial_compression=8
    )
    assert torch.equal(cosmos.decode(ids), video)
    with pytest.raises(ValueError, match="encoder.jit to tokenise pixels.*got none"):
        tok.encode(clips(1))


def test_optional_encoder_and_npy_codebook(folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "with_encoder"
    root.mkdir()
    for name in ("precomputed.json", "decoder.jit"):
        (root / name).write_bytes((folder / name).read_bytes())
    (root / "encoder.jit").write_bytes((folder / "ckpt" / "encoder.jit").read_bytes())
    np.save(root / "codebook.npy", fsq_codebook(LEVELS).numpy())
    tok = PrecomputedTokenizer(root)
    ids = tok.encode(clips(2))
    assert ids.shape == (2, 2, 2, 2) and int(ids.max()) < 48
    assert tok.fingerprint() != PrecomputedTokenizer(folder).fingerprint()
    with pytest.raises(ValueError, match="expected shards .*got none"):
        tok.read_all()


def test_bad_folders_are_clear_errors(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingFilesError, match=r"2 required file\(s\) missing") as err:
        PrecomputedTokenizer(tmp_path / "empty")
    assert "precomputed.json" in str(err.value) and "codebook.safetensors" in str(err.value)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "precomputed.json").write_text(
        json.dumps({"temporal_compression": 4, "spatial_compression": "8"})
    )
    np.save(bad / "codebook.npy", np.zeros(7, dtype=np.float32))
    with pytest.raises(
        ValueError,
        match=r"codebook.npy: expected a float \(K, D\) codebook with K >= 2, got float32 of shape \(7,\)",
    ):
        PrecomputedTokenizer(bad)
    np.save(bad / "codebook.npy", np.zeros((7, 2), dtype=np.float32))
    with pytest.raises(
        ValueError, match="precomputed.json: spatial_compression: expected an integer >= 1, got '8'"
    ):
        PrecomputedTokenizer(bad)
    # a shard with ids outside the codebook, and a captions file one line short
    ids = torch.randint(48, (3, 2, 2, 2), generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 7\)"):
        write_precomputed(
            bad,
            ids,
            ["a", "b", "c"],
            torch.zeros(7, 2),
            temporal_compression=4,
            spatial_compression=8,
        )
    write_precomputed(
        bad, ids, ["a", "b", "c"], torch.zeros(48, 2), temporal_compression=4, spatial_compression=8
    )
    (bad / "codebook.npy").unlink()
    captions = bad / "shards" / "captions.jsonl"
    captions.write_text("\n".join(captions.read_text().splitlines()[:2]) + "\n")
    with pytest.raises(ValueError, match="captions.jsonl: expected 3 captions .*got 2"):
        PrecomputedTokenizer(bad).read_all()


def test_to_token_shards_streams_into_ursa_train(folder: Path, tmp_path: Path) -> None:
    """Text columns added by a real (locally built) HF tokenizer; ShardDataset reads back every clip."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        [f"clip {i}" for i in range(5)],
        trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]"]),
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]"
    ).save_pretrained(tmp_path / "hf")
    text = HFTextTokenizer(tmp_path / "hf", prefix="clip ")
    pre = PrecomputedTokenizer(folder)
    shards = ShardDataset(pre.to_token_shards(text, tmp_path / "tokens"))
    captions, ids = pre.read_all()
    batch = shards.select(torch.arange(5))
    assert len(shards) == 5 and shards.latent_shape == (2, 2, 2) and shards.captions() == captions
    assert torch.equal(batch.visual_ids, ids)
    text_ids, text_mask = text(captions)
    assert torch.equal(batch.text_ids, text_ids) and torch.equal(batch.text_mask, text_mask)
    assert shards.id_range() == (int(ids.min()), int(ids.max()))
