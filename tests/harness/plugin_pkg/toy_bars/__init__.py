"""A third-party plug-in package as a researcher would write one: a benchmark of moving colour
bars, a fixed-palette patch tokenizer, a word-level caption tokenizer and a colour scorer.

The tests install it by putting this directory on PYTHONPATH beside a `toy_bars-0.1.dist-info`
whose entry_points.txt names this module in the `ursa_bench.plugins` group, exactly what
`pip install` of a package declaring that entry point leaves on disk. Nothing under harness/
knows about it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

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
from ursa.tokenizers.base import VisualTokenizer
from ursa.tokenizers.text import pad_batch

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 60, 220),
    "yellow": (230, 210, 40),
}
PALETTE = np.array(
    [(0, 0, 0), *COLOURS.values()], dtype=np.float32
)  # black background + bar colours
PATCH = 4
WORDS = ("<pad>", "a", "bar", "moving", "left", "right", *COLOURS)


class BarsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frames: int = Field(4, ge=2, description="frames per clip")
    size: int = Field(16, ge=8, multiple_of=PATCH, description="clip height and width in pixels")
    train_size: int = Field(32, ge=1)
    eval_size: int = Field(8, ge=2)
    seed: int = 0


class BarPrompt:
    """caption, task, condition frames (none), and what to render."""

    def __init__(self, colour: str, direction: str, start: int) -> None:
        self.colour, self.direction, self.start = colour, direction, start
        self.caption = f"a {colour} bar moving {direction}"
        self.task = "t2v"
        self.condition_frames: tuple[int, ...] = ()


@BENCHMARKS.register("toy_bars")
class Bars(Benchmark):
    """A vertical colour bar moving left or right on black."""

    Options = BarsOptions
    tasks = ("t2v",)
    references = ("real", "wrong_colour")
    default_tokenizer = "toy_palette"
    default_text_tokenizer = "toy_words"

    def fingerprint(self) -> str:
        return hashlib.sha256(self.options.model_dump_json().encode()).hexdigest()[:16]

    def geometry(self) -> tuple[int, int, int]:
        return self.options.frames, self.options.size, self.options.size

    def _prompts(self, n: int, salt: int) -> list[BarPrompt]:
        rng = np.random.default_rng([self.options.seed, salt])
        return [
            BarPrompt(
                str(rng.choice(list(COLOURS))),
                str(rng.choice(["left", "right"])),
                int(rng.integers(0, self.options.size // PATCH)) * PATCH,
            )
            for _ in range(n)
        ]

    def real_videos(self, prompts: list[BarPrompt]) -> torch.Tensor:
        f, s = self.options.frames, self.options.size
        out = np.zeros((len(prompts), f, s, s, 3), dtype=np.uint8)
        for i, p in enumerate(prompts):
            for t in range(f):
                x = (p.start + (PATCH if p.direction == "right" else -PATCH) * t) % s
                out[i, t, :, x : x + PATCH] = COLOURS[p.colour]
        return torch.from_numpy(out)

    def training_set(self) -> tuple[list[str], torch.Tensor]:
        prompts = self._prompts(self.options.train_size, 0)
        return [p.caption for p in prompts], self.real_videos(prompts)

    def suite(self, task: str) -> list[BarPrompt]:
        return self._prompts(self.options.eval_size, 1)

    def generate_reference(
        self, name: str, prompts: list[BarPrompt], tokenizer, seed: int
    ) -> torch.Tensor:
        if name == "real":
            return self.real_videos(prompts)
        names = list(COLOURS)
        return self.real_videos(
            [
                BarPrompt(names[(names.index(p.colour) + 1) % len(names)], p.direction, p.start)
                for p in prompts
            ]
        )


class PaletteTokenizer(VisualTokenizer):
    """Each 4x4 patch -> the palette colour nearest its mean (K = 5, no temporal compression)."""

    @property
    def vocab_size(self) -> int:
        return len(PALETTE)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        return num_frames, height // PATCH, width // PATCH

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.validate_video(video)
        b, f, h, w, _ = video.shape
        means = video.float().reshape(b, f, h // PATCH, PATCH, w // PATCH, PATCH, 3).mean((3, 5))
        return (
            torch.cdist(means.reshape(-1, 3), torch.from_numpy(PALETTE))
            .argmin(-1)
            .reshape(b, f, h // PATCH, w // PATCH)
        )

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        self.validate_ids(ids)
        rgb = torch.from_numpy(PALETTE)[ids].to(torch.uint8)  # (B, T, h, w, 3)
        return rgb.repeat_interleave(PATCH, 2).repeat_interleave(PATCH, 3)

    def codebook_embeddings(self) -> torch.Tensor:
        return torch.from_numpy(PALETTE - PALETTE.mean(0)) / 255.0

    def fingerprint(self) -> str:
        return hashlib.sha256(PALETTE.tobytes()).hexdigest()[:16]


@VISUAL_TOKENIZERS.register("toy_palette")
class Palette(VisualTokenizerPlugin):
    """Fixed five-colour patch palette."""

    @classmethod
    def vocab_size(cls, options: BaseModel) -> int:
        return len(PALETTE)

    @classmethod
    def build(cls, options: BaseModel, benchmark: Benchmark, cache_dir) -> PaletteTokenizer:
        return PaletteTokenizer()


class Words:
    vocab_size = len(WORDS)
    pad_id = 0

    def __call__(
        self, captions: list[str], max_length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_batch(
            [[WORDS.index(w) for w in c.split()] for c in captions], self.pad_id, max_length
        )


@TEXT_TOKENIZERS.register("toy_words")
class WordsPlugin(TextTokenizerPlugin):
    """Word-level ids over the bar captions."""

    @classmethod
    def build(cls, options: BaseModel, benchmark: Benchmark, cache_dir) -> Words:
        return Words()

    @classmethod
    def fingerprint(cls, tokenizer: Words) -> str:
        return hashlib.sha256(" ".join(WORDS).encode()).hexdigest()[:16]


class ColourOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_pixels: int = Field(
        8, ge=1, description="pixels of the caption colour a clip needs per frame"
    )


@SCORERS.register("toy_colour")
class ColourMatch(Scorer):
    """Fraction of frames showing the captioned bar colour."""

    Options = ColourOptions
    metrics = (Metric("colour_match"),)
    benchmarks = ("toy_bars",)

    def score(
        self, videos: torch.Tensor, prompts: list[BarPrompt], task: str, seed: int
    ) -> dict[str, float]:
        want = torch.tensor([COLOURS[p.colour] for p in prompts], dtype=torch.int16)[
            :, None, None, None, :
        ]
        hits = (videos.to(torch.int16) - want).abs().amax(-1).le(30).flatten(2).sum(-1)  # (N, F)
        return {"colour_match": float(hits.ge(self.options.min_pixels).float().mean())}
