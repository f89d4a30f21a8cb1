"""Text tokenizers the harness ships besides the benchmarks' own: a local Hugging Face tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.identity import sha256_of
from harness.plugins import TEXT_TOKENIZERS, Benchmark, TextTokenizerPlugin


class HFOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="local directory with the tokenizer files (nothing is downloaded)"
    )
    prefix: str = Field(
        "", description='prepended to every caption, e.g. the authors\' video prefix "motion=9.0, "'
    )
    max_length: int | None = Field(
        None, ge=1, description="cut captions to this many tokens (prefix included)"
    )

    @field_validator("path")
    @classmethod
    def _is_directory(cls, path: str) -> str:
        if not Path(path).is_dir():
            raise ValueError(
                f"a local directory with tokenizer files (tokenizer.json, ...), got missing {path!r}"
            )
        return path


@TEXT_TOKENIZERS.register("hf")
class HFText(TextTokenizerPlugin):
    """A Hugging Face tokenizer from a local directory (ursa.tokenizers.text.HFTextTokenizer)."""

    Options = HFOptions

    @classmethod
    def build(cls, options: HFOptions, benchmark: Benchmark, cache_dir: Path) -> Any:  # type: ignore[override]  # its own Options
        from ursa.tokenizers.text import HFTextTokenizer

        return HFTextTokenizer(options.path, prefix=options.prefix, max_length=options.max_length)

    @classmethod
    def fingerprint(cls, tokenizer: Any) -> str:
        vocab = tokenizer._tok.get_vocab()
        return sha256_of(
            [sorted(vocab.items(), key=lambda kv: kv[1]), tokenizer.prefix, tokenizer.max_length]
        )[:16]
