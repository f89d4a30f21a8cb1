"""CaptionTokenizer: a word-level TextTokenizer over the shapes caption grammar.

The vocabulary is fixed (every word the grammar can produce, in a fixed order), so ids are
identical across runs and machines. Captions outside the grammar raise ValueError.
"""

from __future__ import annotations

import torch

from benchmarks.shapes.world import COLOUR_NAMES, MOTIONS, SHAPES, SIZES, parse_caption
from ursa.tokenizers.text import pad_batch

VOCAB: tuple[str, ...] = (
    "<pad>",
    "a",
    "and",
    "moving",
    "staying",
    *SIZES,
    *COLOUR_NAMES,
    *SHAPES,
    *MOTIONS,
)


class CaptionTokenizer:
    """Captions -> (ids long (B, L), mask bool (B, L)), right-padded with pad_id 0.

    L is the longest caption in the batch, or `max_length` (truncating) when given.
    """

    def __init__(self) -> None:
        self.vocab: tuple[str, ...] = VOCAB
        self.vocab_size: int = len(VOCAB)
        self.pad_id: int = 0
        self._index = {w: i for i, w in enumerate(VOCAB)}

    def encode(self, text: str) -> list[int]:
        """Word ids of one grammar caption (validated by `parse_caption`)."""
        parse_caption(text)
        return [self._index[w] for w in text.split()]

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Inverse of `encode`; pad ids are dropped."""
        return " ".join(self.vocab[int(i)] for i in ids if int(i) != self.pad_id)

    def __call__(
        self, captions: list[str], max_length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(captions, str) or not isinstance(captions, (list, tuple)):
            raise ValueError(f"captions: expected a list of str, got {type(captions).__name__}")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length: expected None or >= 1, got {max_length}")
        return pad_batch([self.encode(c)[:max_length] for c in captions], self.pad_id, max_length)
