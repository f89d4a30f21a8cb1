"""Speed of the shapes benchmark itself (not a test): clip generation, tokenizer fit,
feature-extractor training and scoring with every scorer, on whatever cores this process gets.
Run: python -m benchmarks.shapes bench"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.shapes.generators import generate_reference
from benchmarks.shapes.prompts import load_suite
from benchmarks.shapes.scorers.extractor import load_or_train_extractor
from benchmarks.shapes.scoring import score
from benchmarks.shapes.tokenizer import load_or_fit_tokenizer
from benchmarks.shapes.world import WorldConfig


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def measure_speed(cache_dir: str | Path | None = None) -> dict[str, float]:
    """Seconds for: generating 1,000 eval clips (suite + render), fitting the tokenizer, training
    the fidelity extractor (both in a fresh cache), and scoring 500 eval clips with all scorers."""
    fresh = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="shapes-bench-"))
    out: dict[str, float] = {}
    _, out["generate_1000_clips_s"] = _timed(
        lambda: generate_reference("real", load_suite("eval", 1000, 0))
    )
    tok, out["tokenizer_fit_s"] = _timed(lambda: load_or_fit_tokenizer(fresh, WorldConfig()))
    _, out["extractor_train_s"] = _timed(lambda: load_or_train_extractor(fresh, WorldConfig()))
    prompts = load_suite("eval", 500, 1)
    videos = generate_reference("reconstruction", prompts, tok)
    _, out["score_500_clips_all_scorers_s"] = _timed(
        lambda: score(videos, prompts, cache_dir=fresh)
    )
    return out
