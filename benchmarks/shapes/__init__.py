"""The embedded, offline "shapes" benchmark: a procedural world of coloured shapes, its prompt
suites, caption and visual tokenizers, exact scorers and reference generators."""

from benchmarks.shapes.generators import GENERATORS, generate_reference
from benchmarks.shapes.prompts import SUITES, Prompt, load_suite, make_training_set, real_videos
from benchmarks.shapes.scoring import SCORERS, ScoreReport, score
from benchmarks.shapes.text import CaptionTokenizer
from benchmarks.shapes.tokenizer import ShapesTokenizer, load_or_fit_tokenizer
from benchmarks.shapes.world import WorldConfig, caption, parse_caption, render, sample_scene

__all__ = [
    "GENERATORS",
    "SCORERS",
    "SUITES",
    "CaptionTokenizer",
    "Prompt",
    "ScoreReport",
    "ShapesTokenizer",
    "WorldConfig",
    "caption",
    "generate_reference",
    "load_or_fit_tokenizer",
    "load_suite",
    "make_training_set",
    "parse_caption",
    "real_videos",
    "render",
    "sample_scene",
    "score",
]
