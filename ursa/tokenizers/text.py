"""Text tokenizers: the interface the model and sampler use, and a Hugging Face adapter.

The denoiser only sees integer ids. A text tokenizer turns captions into a padded id batch
plus an attention mask; `HFTextTokenizer` wraps a real Hugging Face tokenizer loaded from a
local directory (never a hub download).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class TextTokenizer(Protocol):
    """Captions -> (ids long (B, L), mask bool (B, L)); ids in [0, vocab_size)."""

    vocab_size: int
    pad_id: int

    def __call__(
        self, captions: list[str], max_length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


class HFTextTokenizer:
    """A Hugging Face tokenizer from a local directory, right-padded, no special tokens added.

    Caption preprocessing a video model needs: `prefix` is prepended to every caption (the authors
    condition on "motion=9.0, " for video; see ursa.release.motion_prefix), and captions are cut to
    `max_length` tokens, prefix included, keeping their start (a call's own max_length wins)."""

    def __init__(
        self, path: str | Path, *, prefix: str = "", max_length: int | None = None
    ) -> None:
        from transformers import AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise ValueError(
                f"text tokenizer path: expected a local directory with tokenizer files, "
                f"got {str(path)!r} (not a directory)"
            )
        if max_length is not None and (
            not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1
        ):
            raise ValueError(
                f"text tokenizer max_length: expected a positive int or None, got {max_length!r}"
            )
        self._tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.vocab_size = len(self._tok)
        pad = self._tok.pad_token_id
        self.pad_id = int(pad if pad is not None else (self._tok.eos_token_id or 0))
        self.prefix, self.max_length = prefix, max_length

    def __call__(
        self, captions: list[str], max_length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cut = max_length if max_length is not None else self.max_length
        return pad_batch(
            [self._tok.encode(self.prefix + c, add_special_tokens=False)[:cut] for c in captions],
            self.pad_id,
        )


def pad_batch(
    rows: list[list[int]], pad_id: int, length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id rows to `length` (default: the longest row) -> (ids long (B, L), mask bool (B, L))."""
    length = length if length is not None else max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    return ids, mask
