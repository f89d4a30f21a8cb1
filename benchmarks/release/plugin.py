"""The release's tokenizers as harness plug-ins: `release_fsq` (vae/ of URSA-*-FSQ320,
ursa.tokenizers.cosmos3d), `release_ibq` (vae/ of URSA-*-IBQ1024, ursa.tokenizers.ibq) and
`release_text` (tokenizer/, ursa.release.ReleaseTextTokenizer: left-padded to 320 tokens, the
"motion=..., " prefix, and the negative prompt of the sampler's unconditional branch).

Each takes `path`, the release folder (the one `model.init_from: {format: release, path: ...}`
names). Validation reads only file names and the JSON configs: a folder missing files fails there
with one error listing every missing file, and a vae/config.json the implementation does not
reproduce fails with its reasons, before any weights are read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.identity import sha256_of
from harness.plugins import (
    TEXT_TOKENIZERS,
    VISUAL_TOKENIZERS,
    Benchmark,
    TextTokenizerPlugin,
    VisualTokenizerPlugin,
)

VAE_WEIGHTS = "diffusion_pytorch_model.safetensors"  # as ursa.tokenizers.cosmos3d / ibq WEIGHTS
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _missing(path: str, files: dict[str, str], what: str) -> str:
    """`path` when every file is there; else a ValueError listing each missing one and what it is."""
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(
            f"the authors' release folder (holding {', '.join(sorted({f.split('/')[0] for f in files}))}/), "
            f"got {path!r}, which is not a directory"
        )
    missing = [f"{name} ({desc})" for name, desc in files.items() if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"a release folder with {what}; {len(missing)} missing in {path}: " + "; ".join(missing)
        )
    return path


class _VaeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="the authors' release folder (its vae/ holds config.json and the weights)"
    )
    device: str = Field(
        "cpu", description="torch device the tokenizer runs on (cpu, cuda, cuda:1, ...)"
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="precision of the weights"
    )


class ReleaseFSQOptions(_VaeOptions):
    @field_validator("path")
    @classmethod
    def _vae_present(cls, path: str) -> str:
        from ursa.tokenizers.cosmos3d import read_vae_config

        _missing(
            path,
            {
                "vae/config.json": "the FSQ video tokenizer's configuration (AutoencoderVQCosmos3D)",
                f"vae/{VAE_WEIGHTS}": "the FSQ video tokenizer's weights",
            },
            "the FSQ320 video tokenizer",
        )
        read_vae_config(
            Path(path) / "vae"
        )  # class, quantiser, strides: refused here, not at run time
        return path


class ReleaseIBQOptions(_VaeOptions):
    @field_validator("path")
    @classmethod
    def _vae_present(cls, path: str) -> str:
        from ursa.tokenizers.ibq import read_ibq_config

        _missing(
            path,
            {
                "vae/config.json": "the IBQ image tokenizer's configuration (AutoencoderVQ)",
                f"vae/{VAE_WEIGHTS}": "the IBQ image tokenizer's weights",
            },
            "the IBQ1024 image tokenizer",
        )
        read_ibq_config(Path(path) / "vae")
        return path


@VISUAL_TOKENIZERS.register("release_fsq")
class ReleaseFSQ(VisualTokenizerPlugin):
    """The FSQ320 release's own video tokenizer (vae/, AutoencoderVQCosmos3D; K = 64000, 4x8x8)."""

    Options = ReleaseFSQOptions

    @classmethod
    def vocab_size(cls, options: ReleaseFSQOptions) -> int:
        from ursa.tokenizers.fsq import COSMOS_LEVELS

        return math.prod(COSMOS_LEVELS)  # FSQ levels are fixed in their quantiser

    @classmethod
    def build(cls, options: ReleaseFSQOptions, benchmark: Benchmark, cache_dir: Path) -> Any:
        from ursa.tokenizers.cosmos3d import ReleaseVideoTokenizer

        return ReleaseVideoTokenizer(
            options.path, device=options.device, dtype=DTYPES[options.dtype]
        )


@VISUAL_TOKENIZERS.register("release_ibq")
class ReleaseIBQ(VisualTokenizerPlugin):
    """The IBQ1024 release's own image tokenizer (vae/, AutoencoderVQ + VQuantizer; frames coded as images)."""

    Options = ReleaseIBQOptions

    @classmethod
    def vocab_size(cls, options: ReleaseIBQOptions) -> int:
        from ursa.tokenizers.ibq import read_ibq_config

        return int(read_ibq_config(Path(options.path) / "vae")["num_vq_embeddings"])

    @classmethod
    def build(cls, options: ReleaseIBQOptions, benchmark: Benchmark, cache_dir: Path) -> Any:
        from ursa.tokenizers.ibq import ReleaseImageTokenizer

        return ReleaseImageTokenizer(
            options.path, device=options.device, dtype=DTYPES[options.dtype]
        )


class ReleaseTextOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="the authors' release folder (its tokenizer/ holds the Qwen3 tokenizer files)"
    )
    prefix: str = Field(
        "", description='prepended to every caption, e.g. the authors\' video prefix "motion=9.0, "'
    )
    max_length: int = Field(
        320,
        ge=1,
        description="captions truncated and left-padded to this many tokens "
        "(URSAPipeline's max_prompt_length)",
    )
    negative_prompt: str = Field(
        "",
        description="the unconditional branch of classifier-free guidance (the "
        "pipeline's default ''; ursa.release.VBENCH_NEGATIVE_PROMPT is "
        "their VBench script's)",
    )

    @field_validator("path")
    @classmethod
    def _tokenizer_present(cls, path: str) -> str:
        return _missing(
            path,
            {
                "tokenizer/tokenizer_config.json": "the Qwen3 text tokenizer's configuration",
                "tokenizer/tokenizer.json": "the Qwen3 text tokenizer's vocabulary and merges",
            },
            "the Qwen3 text tokenizer",
        )


@TEXT_TOKENIZERS.register("release_text")
class ReleaseText(TextTokenizerPlugin):
    """The release's Qwen3 tokenizer (tokenizer/): left-padded to 320, prefix, and the negative prompt (uncond)."""

    Options = ReleaseTextOptions

    @classmethod
    def build(cls, options: ReleaseTextOptions, benchmark: Benchmark, cache_dir: Path) -> Any:
        from ursa.release import ReleaseTextTokenizer

        return ReleaseTextTokenizer(
            Path(options.path) / "tokenizer",
            max_length=options.max_length,
            prefix=options.prefix,
            negative_prompt=options.negative_prompt,
        )

    @classmethod
    def fingerprint(cls, tokenizer: Any) -> str:
        # the files themselves (vocabulary, merges, special tokens) and every option that changes ids
        files = [
            (tokenizer.path / name).read_text()
            for name in ("tokenizer.json", "tokenizer_config.json")
        ]
        return sha256_of(
            [files, tokenizer.prefix, tokenizer.max_length, tokenizer.negative_prompt]
        )[:16]
