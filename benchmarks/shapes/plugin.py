"""The shapes benchmark as harness plug-ins: benchmark, patch tokenizer, caption tokenizer, scorers.

Registered through this project's `ursa_bench.plugins` entry point (pyproject.toml), exactly as a
third-party package would register its own; the harness has no special case for shapes.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from benchmarks.shapes.scorers.alignment import PARTS
from benchmarks.shapes.scorers.quality import QUALITY_METRICS
from harness.identity import sha256_of
from harness.plugins import (
    BENCHMARKS,
    SCORERS,
    TEXT_TOKENIZERS,
    VISUAL_TOKENIZERS,
    Benchmark,
    Metric,
    Scorer,
    TextTokenizerPlugin,
    VisualTokenizerPlugin,
)

TASK_SUITE = {
    "t2v": "eval",
    "t2i": "t2i",
    "i2v": "i2v",
    "interpolation": "interpolation",
    "extrapolation": "extrapolation",
    "long": "long",
}


@functools.lru_cache(maxsize=256)
def _world(world_json: str) -> Any:
    from benchmarks.shapes.world import WorldConfig

    return WorldConfig(**json.loads(world_json))


def world_config(world: dict[str, Any]) -> Any:
    """benchmarks.shapes.WorldConfig of a `world:` mapping (cached: grids repeat worlds)."""
    return _world(json.dumps(world, sort_keys=True, default=str))


class ShapesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    world: dict[str, Any] = Field(
        default_factory=dict, description="kwargs of benchmarks.shapes.WorldConfig"
    )
    train_size: int = Field(256, ge=1, description="training clips")
    eval_size: int = Field(16, ge=1, description="t2v evaluation prompts")
    task_size: int = Field(8, ge=1, description="prompts per other task suite")
    seed: int = Field(0, description="seed of the training set and suites")

    @field_validator("world")
    @classmethod
    def _valid_world(cls, world: dict[str, Any]) -> dict[str, Any]:
        from benchmarks.shapes.world import WorldConfig

        fields = list(WorldConfig.__dataclass_fields__)
        bad = [k for k in world if k not in fields]
        if bad:
            from harness.plugins import did_you_mean

            raise ValueError(
                f"a valid shapes world with keys among {', '.join(fields)}; {bad[0]!r} is not one."
                f"{did_you_mean(bad[0], fields)}"
            )
        try:
            world_config(world)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a valid shapes world: {exc}") from None
        return world


@BENCHMARKS.register("shapes")
class ShapesBenchmark(Benchmark):
    """Procedural clips of moving coloured shapes with exact scorers (embedded, offline)."""

    Options = ShapesOptions
    tasks = tuple(TASK_SUITE)
    references = ("real", "reconstruction", "static", "memoriser", "shuffled", "random")
    default_tokenizer = "shapes"
    default_text_tokenizer = "shapes"
    fps = 8.0  # a world step per frame: the rate its exports play at

    def __init__(self, options: ShapesOptions, cache_dir: Path) -> None:
        super().__init__(options, cache_dir)
        self.world = world_config(options.world)

    @classmethod
    def check_run(cls, options: ShapesOptions, config: Any) -> str | None:
        frames = world_config(options.world).frames
        if "long" in config.sample.tasks and not config.sample.context_frames < frames:
            return (
                f"sample.context_frames ({config.sample.context_frames}) to be < the window length "
                f"benchmark.world.frames ({frames}) for the long task"
            )
        return None

    def fingerprint(self) -> str:
        return sha256_of(
            {"world": asdict(self.world), "options": self.options.model_dump(mode="json")}
        )[:16]

    @classmethod
    def geometry_of(cls, options: ShapesOptions) -> tuple[int, int, int]:
        world = world_config(options.world)
        return world.frames, world.height, world.width

    def geometry(self) -> tuple[int, int, int]:
        return self.geometry_of(self.options)

    def training_set(self) -> tuple[list[str], torch.Tensor]:
        from benchmarks.shapes.prompts import make_training_set

        return make_training_set(self.world, self.options.train_size, self.options.seed)

    def suite(self, task: str) -> list:
        from benchmarks.shapes.prompts import load_suite

        n = self.options.eval_size if task == "t2v" else self.options.task_size
        return load_suite(TASK_SUITE[task], n, self.options.seed, self.world)

    def real_videos(self, prompts: list) -> torch.Tensor:
        from benchmarks.shapes.prompts import real_videos

        return real_videos(prompts)

    def generate_reference(
        self, name: str, prompts: list, tokenizer: Any, seed: int
    ) -> torch.Tensor:
        from benchmarks.shapes.generators import generate_reference
        from benchmarks.shapes.prompts import load_suite

        train = None
        if (
            name == "memoriser"
        ):  # the training prompts (captions and scenes); no clip is rendered here
            train = load_suite("train", self.options.train_size, self.options.seed, self.world)
        return generate_reference(name, prompts, tokenizer, self.world, seed, train)


class ShapesTokenizerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codebook_size: int = Field(
        65, ge=2, description="K = 1 + C * (M - 1): C colours, M >= 2 patch masks"
    )
    seed: int = Field(0, description="seed of the mask fit")

    @field_validator("codebook_size")
    @classmethod
    def _formula(cls, size: int) -> int:
        from benchmarks.shapes.world import (
            PALETTE,
        )  # numpy only: validation must not wait for torch

        colours = len(PALETTE) - 1  # as benchmarks.shapes.tokenizer.NUM_COLOURS
        if size < 1 + colours or (size - 1) % colours:
            raise ValueError(f"1 + {colours} * (M - 1) with M >= 2 (e.g. 65, 129, 509)")
        return size


@VISUAL_TOKENIZERS.register("shapes")
class ShapesPatchTokenizer(VisualTokenizerPlugin):
    """Patch codebook fitted on the shapes world: one colour x one binary mask per 4x4 patch."""

    Options = ShapesTokenizerOptions

    @classmethod
    def vocab_size(cls, options: ShapesTokenizerOptions) -> int:
        return options.codebook_size

    @classmethod
    def build(cls, options: ShapesTokenizerOptions, benchmark: Benchmark, cache_dir: Path) -> Any:
        from benchmarks.shapes.tokenizer import load_or_fit_tokenizer

        world = getattr(benchmark, "world", None)
        if world is None:
            raise ValueError(
                f"tokenizer.name 'shapes' is fitted on a shapes world; benchmark "
                f"{type(benchmark).__name__} has none (name another tokenizer)"
            )
        return load_or_fit_tokenizer(
            cache_dir / "shapes", world, codebook_size=options.codebook_size, seed=options.seed
        )


@TEXT_TOKENIZERS.register("shapes")
class ShapesCaptionTokenizer(TextTokenizerPlugin):
    """Word-level tokenizer over the shapes caption grammar (fixed vocabulary)."""

    @classmethod
    def build(cls, options: BaseModel, benchmark: Benchmark, cache_dir: Path) -> Any:
        from benchmarks.shapes.text import CaptionTokenizer

        return CaptionTokenizer()

    @classmethod
    def fingerprint(cls, tokenizer: Any) -> str:
        return sha256_of(list(tokenizer.vocab))[:16]


class _ShapesScorer(Scorer):
    benchmarks = ("shapes",)
    which: str = ""

    def score(self, videos: torch.Tensor, prompts: list, task: str, seed: int) -> dict[str, float]:
        return self.evaluate(videos, prompts, task, seed)[0]

    def evaluate(
        self, videos: torch.Tensor, prompts: list, task: str, seed: int
    ) -> tuple[dict[str, float], dict[str, list[float]]]:
        from benchmarks.shapes import score

        report = score(
            videos, prompts, which=(self.which,), seed=seed, cache_dir=self.cache_dir / "shapes"
        )
        metrics = {k: float(v) for k, v in report.metrics.items()}
        per_clip = {
            k: [float(row[k]) for row in report.rows]
            for k in metrics
            if report.rows and all(k in row for row in report.rows)
        }
        return metrics, per_clip


@SCORERS.register("alignment")
class ShapesAlignment(_ShapesScorer):
    """Whole-caption match: a clip aligns only if every stated object, shape, size, motion holds.

    `alignment` is the fraction of prompts whose clip answers every caption question yes (so a
    static clip or a memorised training clip cannot score by getting 4 of 5 questions right);
    `alignment_dpg` is DPG-Bench's mean over gated questions, `alignment_<category>` and
    `alignment_shape` its parts. See benchmarks.shapes.scorers.alignment."""

    which = "alignment"
    metrics = (Metric("alignment"), *(Metric(f"alignment_{p}") for p in PARTS))


@SCORERS.register("quality")
class ShapesQuality(_ShapesScorer):
    """VBench-style quality dimensions computed exactly from pixels and detections."""

    which = "quality"
    metrics = tuple(Metric(m) for m in QUALITY_METRICS)


@SCORERS.register("fidelity")
class ShapesFidelity(_ShapesScorer):
    """FID / KID / precision / recall (torch-fidelity) with a world-trained feature extractor."""

    which = "fidelity"
    metrics = (
        Metric("fid", 0.0, float("inf"), higher_is_better=False),
        Metric("kid", float("-inf"), float("inf"), higher_is_better=False),
        Metric("precision"),
        Metric("recall"),
    )


@SCORERS.register("tasks")
class ShapesTaskMetrics(_ShapesScorer):
    """Conditioned-task metrics (i2v, interpolation, extrapolation, long) against the real clips."""

    which = "tasks"
    metrics = (
        Metric("first_frame_fidelity"),
        Metric("identity_persistence"),
        Metric("endpoint_match"),
        Metric("continuation_consistency"),
        Metric("long_alignment_first"),
        Metric("long_alignment_last"),
        Metric("long_drift", -1.0, 1.0, higher_is_better=False),
    )
