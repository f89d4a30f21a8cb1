"""ursa.release.ReleaseTextTokenizer: the release's padding convention, prefix and negative prompt."""

import pytest
import torch
from test_release_helpers import WORDS, make_tokenizer

from ursa.release import ReleaseTextTokenizer, motion_prefix


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def ids(*words):
    return [WORDS.index(w) for w in words]


def test_left_padded_to_max_length_with_prefix(folder):
    tok = ReleaseTextTokenizer(folder, max_length=6, prefix=motion_prefix(9))
    text, mask = tok(["a red circle", "blue square moving left up down"])
    assert (
        text.dtype == torch.long and mask.dtype == torch.bool and text.shape == mask.shape == (2, 6)
    )
    assert text[0].tolist() == [0, 0] + ids("motion=9.0,", "a", "red", "circle")
    assert mask[0].tolist() == [False, False, True, True, True, True]
    assert text[1].tolist() == ids(
        "motion=9.0,", "blue", "square", "moving", "left", "up"
    )  # truncated on the right
    assert tok.vocab_size == len(WORDS) and tok.pad_id == 0


def test_negative_prompt_unconditional(folder):
    tok = ReleaseTextTokenizer(
        folder, max_length=4, prefix="motion=9.0, ", negative_prompt="worst quality,"
    )
    u, m = tok.uncond(3)
    assert u.tolist() == [[0, 0] + ids("worst", "quality,")] * 3 and m.sum().item() == 6
    assert ReleaseTextTokenizer(folder, max_length=3).uncond(1)[0].tolist() == [
        [0, 0, 0]
    ]  # "" -> all pads


def test_missing_files(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"expected the Qwen3 tokenizer files, got missing \['tokenizer_config.json', 'tokenizer.json'\]",
    ):
        ReleaseTextTokenizer(tmp_path)
