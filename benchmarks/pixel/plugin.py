"""Real-data components as harness plug-ins: the `cosmos` and `precomputed` visual tokenizers and the
pixel-space scorers `flicker` (VBench's temporal flickering) and `frames` (first-frame, endpoint and
continuation PSNR of the conditioned tasks).

Registered through this project's `ursa_bench.plugins` entry point (pyproject.toml). Options are
checked when a spec is validated: a checkpoint folder with missing files fails there, naming every
file, before any compute.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from benchmarks.pixel.frames import PSNR_CAP, task_metrics, temporal_flickering
from harness.plugins import (
    SCORERS,
    VISUAL_TOKENIZERS,
    Benchmark,
    Metric,
    Scorer,
    VisualTokenizerPlugin,
)

DEVICE = Field(
    "cpu", description="torch device the TorchScript modules run on (cpu, cuda, cuda:1, ...)"
)
BATCH = Field(1, ge=1, description="clips per encoder / decoder call (bounds memory)")


class CosmosOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="local Cosmos-Tokenizer DV checkpoint folder (encoder.jit, decoder.jit)"
    )
    levels: list[int] | None = Field(
        None, description="FSQ levels (default: config.json, else (8, 8, 8, 5, 5, 5))"
    )
    temporal_compression: Literal[4, 8] | None = Field(
        None, description="default: config.json or the folder name (DV4x8x8)"
    )
    spatial_compression: Literal[8, 16] | None = Field(
        None, description="default: config.json or the folder name"
    )
    device: str = DEVICE
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="precision the TorchScript modules run in"
    )
    batch_size: int = BATCH

    @field_validator("path")
    @classmethod
    def _checkpoint_present(cls, path: str) -> str:
        from ursa.tokenizers.cosmos import DECODER, ENCODER, OBTAIN

        missing = [
            str(Path(path) / n) for n in (ENCODER, DECODER) if not (Path(path) / n).is_file()
        ]
        if missing:
            raise ValueError(
                f"a Cosmos-Tokenizer DV checkpoint folder; missing {', '.join(missing)} (obtain: {OBTAIN})"
            )
        return path

    @model_validator(mode="after")
    def _geometry(self) -> CosmosOptions:
        from ursa.tokenizers.cosmos import resolve_geometry

        resolve_geometry(
            self.path, self.levels, self.temporal_compression, self.spatial_compression
        )
        return self


@VISUAL_TOKENIZERS.register("cosmos")
class Cosmos(VisualTokenizerPlugin):
    """NVIDIA Cosmos-Tokenizer discrete video checkpoint (FSQ; TorchScript encoder/decoder, local folder)."""

    Options = CosmosOptions

    @classmethod
    def vocab_size(cls, options: CosmosOptions) -> int:
        from ursa.tokenizers.cosmos import resolve_geometry

        return math.prod(resolve_geometry(options.path, options.levels).levels)

    @classmethod
    def build(cls, options: CosmosOptions, benchmark: Benchmark, cache_dir: Path) -> Any:
        from ursa.tokenizers.cosmos import CosmosTokenizer

        return CosmosTokenizer(
            options.path,
            levels=options.levels,
            temporal_compression=options.temporal_compression,
            spatial_compression=options.spatial_compression,
            device=options.device,
            dtype=options.dtype,
            batch_size=options.batch_size,
        )


class PrecomputedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        None,
        description="folder with precomputed.json, codebook.safetensors|npy, shards/ "
        "(+ decoder.jit); default: the benchmark's token folder (token_folder)",
    )
    device: str = DEVICE
    batch_size: int = BATCH

    @field_validator("path")
    @classmethod
    def _folder_present(cls, path: str | None) -> str | None:
        from ursa.tokenizers.precomputed import CODEBOOK_NPY, CODEBOOK_ST, META

        if path is None:  # the benchmark's folder, checked by it
            return path
        folder = Path(path)
        missing = [str(folder / META)] if not (folder / META).is_file() else []
        if not (folder / CODEBOOK_ST).is_file() and not (folder / CODEBOOK_NPY).is_file():
            missing.append(f"{folder / CODEBOOK_ST} (or {CODEBOOK_NPY})")
        if missing:
            raise ValueError(
                f"a precomputed-tokens folder (layout: ursa/tokenizers/precomputed.py); missing "
                f"{', '.join(missing)}"
            )
        return path


@VISUAL_TOKENIZERS.register("precomputed")
class Precomputed(VisualTokenizerPlugin):
    """Ids tokenised elsewhere: shards + a (K, D) codebook (+ optional TorchScript decoder / encoder)."""

    Options = PrecomputedOptions

    @classmethod
    def build(cls, options: PrecomputedOptions, benchmark: Benchmark, cache_dir: Path) -> Any:
        from ursa.tokenizers.precomputed import PrecomputedTokenizer

        folder = options.path or getattr(
            benchmark, "token_root", None
        )  # a benchmark of stored ids names its folder
        if folder is None:
            raise ValueError(
                f"tokenizer.path: expected a precomputed-tokens folder (required unless the benchmark "
                f"holds one, as token_folder does), got none with benchmark {type(benchmark).__name__}"
            )
        return PrecomputedTokenizer(folder, device=options.device, batch_size=options.batch_size)


def _mean_and_clips(
    per_clip: dict[str, torch.Tensor],
) -> tuple[dict[str, float], dict[str, list[float]]]:
    return (
        {k: float(v.mean()) for k, v in per_clip.items()},
        {k: [float(x) for x in v] for k, v in per_clip.items()},
    )


@SCORERS.register("flicker")
class Flicker(Scorer):
    """VBench's temporal flickering, (255 - mean |consecutive frame difference|) / 255, on decoded frames."""

    metrics = (Metric("temporal_flickering"),)

    def score(self, videos: torch.Tensor, prompts: list, task: str, seed: int) -> dict[str, float]:
        return self.evaluate(videos, prompts, task, seed)[0]

    def evaluate(
        self, videos: torch.Tensor, prompts: list, task: str, seed: int
    ) -> tuple[dict[str, float], dict[str, list[float]]]:
        return _mean_and_clips({"temporal_flickering": temporal_flickering(videos)})


@SCORERS.register("frames")
class FrameTaskMetrics(Scorer):
    """Conditioned-task PSNR against the real clips: i2v first frame, interpolation endpoints,
    extrapolation continuation."""

    metrics = (
        Metric("first_frame_psnr", 0.0, PSNR_CAP),
        Metric("endpoint_psnr", 0.0, PSNR_CAP),
        Metric("continuation_psnr", 0.0, PSNR_CAP),
    )

    def score(self, videos: torch.Tensor, prompts: list, task: str, seed: int) -> dict[str, float]:
        return self.evaluate(videos, prompts, task, seed)[0]

    def evaluate(
        self, videos: torch.Tensor, prompts: list, task: str, seed: int
    ) -> tuple[dict[str, float], dict[str, list[float]]]:
        if not prompts or task not in ("i2v", "interpolation", "extrapolation"):
            return {}, {}
        # condition_frames index the benchmark's (pixel) frames: extrapolation gives the first k of them
        given = len(prompts[0].condition_frames)
        return _mean_and_clips(
            task_metrics(task, videos, self.benchmark.real_videos(prompts), given)
        )
