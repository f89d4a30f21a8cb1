import pytest
import torch

from benchmarks.shapes.text import CaptionTokenizer
from ursa.tokenizers.text import TextTokenizer


def test_caption_tokenizer_batches_and_round_trips():
    tok = CaptionTokenizer()
    assert isinstance(tok, TextTokenizer)
    caps = [
        "a small red circle moving left",
        "a large blue square staying still and a small green triangle moving up",
    ]
    ids, mask = tok(caps)
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == (2, 13)
    assert mask.sum(1).tolist() == [6, 13] and (ids[~mask] == tok.pad_id).all()
    assert [tok.decode(r) for r in ids] == caps
    assert int(ids.max()) < tok.vocab_size
    assert tok(caps, max_length=4)[0].shape == (2, 4)
    assert torch.equal(
        CaptionTokenizer()(caps)[0], ids
    )  # fixed vocabulary: same ids in a fresh instance


def test_caption_tokenizer_rejects_bad_input():
    tok = CaptionTokenizer()
    with pytest.raises(ValueError, match="caption"):
        tok(["a small purple circle"])
    with pytest.raises(ValueError, match="captions"):
        tok("a small red circle")
