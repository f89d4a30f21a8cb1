"""Finite scalar quantisation (FSQ) grid codebooks, as used by the Cosmos video tokenizer.

An FSQ code has one scalar per level; scalar i takes L_i values k / (L_i // 2) - 1 for
k = 0..L_i-1, i.e. a grid in [-1, 1] (for even L_i the top value is 1 - 2/L_i, as in FSQ).
The flat index is mixed-radix with the first level varying fastest:
index = sum_i k_i * prod_{j<i} L_j, so levels (8, 8, 8, 5, 5, 5) give K = 64000 codes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

COSMOS_LEVELS = (8, 8, 8, 5, 5, 5)


def _check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    levels = tuple(levels)
    if not levels or any(not isinstance(n, int) or isinstance(n, bool) or n < 2 for n in levels):
        raise ValueError(f"levels: expected a non-empty sequence of ints >= 2, got {levels!r}")
    return levels


def _radix(levels: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(levels long (D,), basis long (D,)) with basis = cumulative product, first level fastest."""
    sizes = torch.tensor(levels, dtype=torch.long, device=device)
    basis = torch.cumprod(torch.cat([sizes.new_ones(1), sizes[:-1]]), 0)
    return sizes, basis


def fsq_indices_to_codes(
    indices: torch.Tensor, levels: Sequence[int] = COSMOS_LEVELS
) -> torch.Tensor:
    """indices long (...) in [0, prod(levels)) -> codes float32 (..., len(levels)) in [-1, 1]."""
    levels = _check_levels(levels)
    size = math.prod(levels)
    if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int32, torch.int64):
        got = indices.dtype if isinstance(indices, torch.Tensor) else type(indices).__name__
        raise ValueError(f"indices: expected an integer tensor, got {got}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= size):
        raise ValueError(
            f"indices: expected values in [0, {size}), got [{int(indices.min())}, {int(indices.max())}]"
        )
    sizes, basis = _radix(levels, indices.device)
    digits = (indices.long().unsqueeze(-1) // basis) % sizes  # (..., D) in [0, L_i)
    half = (sizes // 2).float()
    return digits.float() / half - 1.0


def fsq_codes_to_indices(
    codes: torch.Tensor, levels: Sequence[int] = COSMOS_LEVELS
) -> torch.Tensor:
    """codes float (..., len(levels)) -> indices long (...); each scalar is rounded to its grid.

    Raises ValueError when a scalar rounds to a value outside its level's grid.
    """
    levels = _check_levels(levels)
    if (
        not isinstance(codes, torch.Tensor)
        or not codes.is_floating_point()
        or codes.dim() < 1
        or codes.shape[-1] != len(levels)
    ):
        got = (
            f"{codes.dtype} of shape {tuple(codes.shape)}"
            if isinstance(codes, torch.Tensor)
            else type(codes).__name__
        )
        raise ValueError(f"codes: expected a float tensor of shape (..., {len(levels)}), got {got}")
    sizes, basis = _radix(levels, codes.device)
    half = (sizes // 2).float()
    digits = torch.round((codes.float() + 1.0) * half).long()
    if codes.numel() and bool(((digits < 0) | (digits >= sizes)).any()):
        raise ValueError(
            f"codes: expected per-level values on the FSQ grid in [-1, 1] for levels {levels}, "
            f"got values in [{float(codes.min())}, {float(codes.max())}]"
        )
    return (digits * basis).sum(-1)


def fsq_codebook(levels: Sequence[int] = COSMOS_LEVELS) -> torch.Tensor:
    """All FSQ codes in index order: float32 (prod(levels), len(levels)), values in [-1, 1]."""
    levels = _check_levels(levels)
    return fsq_indices_to_codes(torch.arange(math.prod(levels)), levels)
