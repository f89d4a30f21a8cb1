"""Tokenizer interfaces (visual, text) and the FSQ grid codebook helpers."""

from ursa.tokenizers.base import VisualTokenizer
from ursa.tokenizers.fsq import (
    COSMOS_LEVELS,
    fsq_codebook,
    fsq_codes_to_indices,
    fsq_indices_to_codes,
)
from ursa.tokenizers.text import HFTextTokenizer, TextTokenizer

__all__ = [
    "COSMOS_LEVELS",
    "HFTextTokenizer",
    "TextTokenizer",
    "VisualTokenizer",
    "fsq_codebook",
    "fsq_codes_to_indices",
    "fsq_indices_to_codes",
]
