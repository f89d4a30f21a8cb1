import math

import pytest
import torch

from ursa.tokenizers import fsq_codebook, fsq_codes_to_indices, fsq_indices_to_codes


def test_default_codebook_is_cosmos_grid():
    book = fsq_codebook()
    assert book.shape == (64000, 6) and book.dtype == torch.float32
    assert float(book.min()) == -1.0 and float(book.max()) <= 1.0
    # per level: 8 values k/4 - 1 (top 0.75) for the 8-levels, 5 values k/2 - 1 for the 5-levels
    for i, n in enumerate((8, 8, 8, 5, 5, 5)):
        expected = torch.arange(n, dtype=torch.float32) / (n // 2) - 1
        assert torch.equal(book[:, i].unique(), expected)
    assert book.unique(dim=0).shape[0] == 64000  # every index is a distinct code


def test_first_level_varies_fastest():
    book = fsq_codebook((3, 2))
    assert book.tolist() == [[-1, -1], [0, -1], [1, -1], [-1, 0], [0, 0], [1, 0]]


@pytest.mark.parametrize("levels", [(8, 8, 8, 5, 5, 5), (7, 5, 5, 5), (2,), (4, 3)])
def test_roundtrip(levels):
    idx = torch.arange(math.prod(levels))
    assert torch.equal(fsq_codes_to_indices(fsq_indices_to_codes(idx, levels), levels), idx)


def test_off_grid_codes_round_to_nearest():
    levels = (5, 8)
    idx = torch.randint(0, 40, (100,), generator=torch.Generator().manual_seed(0))
    codes = fsq_indices_to_codes(idx, levels)
    noise = (
        torch.rand(codes.shape, generator=torch.Generator().manual_seed(1)) - 0.5
    ) * 0.2  # < half a step (0.25)
    assert torch.equal(fsq_codes_to_indices(codes + noise, levels), idx)


def test_bad_input():
    with pytest.raises(ValueError, match="levels"):
        fsq_codebook((8, 1))
    with pytest.raises(ValueError, match=r"indices: expected values in \[0, 64000\)"):
        fsq_indices_to_codes(torch.tensor([64000]))
    with pytest.raises(ValueError, match="indices: expected an integer tensor"):
        fsq_indices_to_codes(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"codes: expected a float tensor of shape \(\.\.\., 6\)"):
        fsq_codes_to_indices(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="FSQ grid"):
        fsq_codes_to_indices(torch.full((1, 6), 1.5))
