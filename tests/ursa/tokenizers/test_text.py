"""HFTextTokenizer on a real Hugging Face tokenizer built and saved here (no hub download),
and the shared right-padding helper."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ursa.model import URSAConfig, URSAModel
from ursa.tokenizers import HFTextTokenizer, TextTokenizer
from ursa.tokenizers.text import pad_batch

CAPTIONS = ["a large red circle moving left", "a small blue square moving up", "a green triangle"]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    """A word-level fast tokenizer trained on a few captions, saved as a transformers directory."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CAPTIONS, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]"]))
    path = tmp_path_factory.mktemp("hf_tokenizer")
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]"
    ).save_pretrained(path)
    return path


def test_hf_tokenizer_from_a_local_directory_pads_right(hf_dir: Path) -> None:
    tok = HFTextTokenizer(hf_dir)
    assert isinstance(tok, TextTokenizer) and tok.pad_id == 0
    ids, mask = tok(CAPTIONS)
    assert ids.shape == mask.shape == (3, 6) and ids.dtype == torch.long
    assert mask.sum(1).tolist() == [6, 6, 3]
    assert bool((ids[~mask] == tok.pad_id).all()) and bool((ids[mask] != tok.pad_id).all())
    short, short_mask = tok(CAPTIONS, max_length=2)
    assert short.shape == (3, 2) and bool(short_mask.all()) and torch.equal(short, ids[:, :2])


def test_hf_tokenizer_output_drives_the_model(hf_dir: Path) -> None:
    """The model takes the ids as they come; padding does not change the unpadded caption's output
    (tolerance 1e-5: same math, different sequence length)."""
    tok = HFTextTokenizer(hf_dir)
    model = URSAModel(
        URSAConfig.preset("tiny", text_vocab_size=tok.vocab_size, visual_vocab_size=32)
    ).eval()
    visual = torch.randint(32, (1, 2, 3, 3), generator=torch.Generator().manual_seed(0))
    ids, mask = tok(CAPTIONS)
    alone, alone_mask = tok(CAPTIONS[2:])
    with torch.no_grad():
        batched = model(ids, visual.expand(3, -1, -1, -1), mask)[2]
        single = model(alone, visual, alone_mask)[0]
    assert torch.allclose(batched, single, atol=1e-5)


def test_missing_tokenizer_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="text tokenizer path.*not a directory"):
        HFTextTokenizer(tmp_path / "nope")


def test_pad_batch_to_a_fixed_length() -> None:
    ids, mask = pad_batch([[5, 6], [7]], pad_id=0, length=3)
    assert ids.tolist() == [[5, 6, 0], [7, 0, 0]] and mask.tolist() == [
        [True, True, False],
        [True, False, False],
    ]


def test_caption_prefix_and_max_length_through_the_hf_plugin(hf_dir: Path, tmp_path: Path) -> None:
    """The harness's `hf` text tokenizer passes its caption options on; the prefix counts toward
    max_length, truncation keeps the caption's start, and both enter the fingerprint."""
    from harness.plugins import TEXT_TOKENIZERS

    plugin = TEXT_TOKENIZERS.get("hf")
    plain = plugin.build(plugin.Options(path=str(hf_dir)), None, tmp_path)
    opts = plugin.Options(path=str(hf_dir), prefix="a green ", max_length=4)
    tok = plugin.build(opts, None, tmp_path)
    ids, mask = tok(CAPTIONS)
    full, _ = plain(["a green " + c for c in CAPTIONS])
    assert ids.shape == (3, 4) and bool(mask.all()) and torch.equal(ids, full[:, :4])
    assert tok(CAPTIONS, max_length=6)[0].shape == (3, 6)  # a call's own max_length wins
    assert plugin.fingerprint(tok) != plugin.fingerprint(plain)
    with pytest.raises(ValueError, match="max_length"):
        plugin.Options(path=str(hf_dir), max_length=0)
