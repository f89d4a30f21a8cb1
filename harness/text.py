"""Text tokenizers the harness ships besides the benchmarks' own: a local Hugging Face tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.plugins import TEXT_TOKENIZERS, Benchmark, TextTokenizerPlugin
from harness.identity import sha256_of


class HFOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="local directory with the tokenizer files (nothing is downloaded)")

    @field_validator("path")
    @classmethod
    def _is_directory(cls, path: str) -> str:
        if not Path(path).is_dir():
            raise ValueError(f"a local directory with tokenizer files (tokenizer.json, ...), got missing {path!r}")
        return path


@TEXT_TOKENIZERS.register("hf")
class HFText(TextTokenizerPlugin):
    """A Hugging Face tokenizer from a local directory (ursa.tokenizers.text.HFTextTokenizer)."""

    Options = HFOptions

    @classmethod
    def build(cls, options: HFOptions, benchmark: Benchmark, cache_dir: Path) -> Any:
        from ursa.tokenizers.text import HFTextTokenizer

        return HFTextTokenizer(options.path)

    @classmethod
    def fingerprint(cls, tokenizer: Any) -> str:
        vocab = tokenizer._tok.get_vocab()
        return sha256_of(sorted(vocab.items(), key=lambda kv: kv[1]))[:16]
