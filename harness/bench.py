"""The benchmark side of a run: world, tokenizers, training tokens, prompt suites (shapes).

Everything here is deterministic in the run config and cached under `<runs_root>/_cache/`
(tokenizer fits and tokenised training sets are shared by every run with the same data config).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from harness.identity import canonical_json, sha256_of
from harness.spec import RunConfig
from harness.store import atomic_write_bytes

TASK_SUITE = {"t2v": "eval", "t2i": "t2i", "i2v": "i2v", "interpolation": "interpolation",
              "extrapolation": "extrapolation", "long": "long"}


@dataclass
class Bench:
    """World geometry, visual tokenizer (K ids) and caption tokenizer of one data config."""

    world: Any  # benchmarks.shapes.world.WorldConfig
    tokenizer: Any  # benchmarks.shapes.tokenizer.ShapesTokenizer
    text: Any  # benchmarks.shapes.text.CaptionTokenizer
    fingerprint: str  # world + tokenizer, for run ids


def cache_dir(runs_root: str | Path) -> Path:
    return Path(runs_root) / "_cache"


@functools.lru_cache(maxsize=8)
def _load_bench(data_json: str, root: str) -> Bench:
    from benchmarks.shapes.text import CaptionTokenizer
    from benchmarks.shapes.tokenizer import load_or_fit_tokenizer
    from benchmarks.shapes.world import WorldConfig

    data = json.loads(data_json)
    world = WorldConfig(**data["benchmark"]["world"])
    tok = load_or_fit_tokenizer(Path(root) / "shapes", world, codebook_size=data["tokenizer"]["codebook_size"],
                                seed=data["tokenizer"]["seed"])
    fp = sha256_of({"world": asdict(world), "tokenizer": tok.fingerprint(), "benchmark": data["benchmark"]})[:16]
    return Bench(world, tok, CaptionTokenizer(), fp)


def load_bench(data_config: dict[str, Any], runs_root: str | Path) -> Bench:
    """The Bench for {"benchmark": ..., "tokenizer": ...} (fitted once, then read from the cache)."""
    return _load_bench(canonical_json(data_config), str(cache_dir(runs_root)))


def bench_for(config: RunConfig, runs_root: str | Path) -> Bench:
    cfg = config.model_dump(mode="json")
    return load_bench({"benchmark": cfg["benchmark"], "tokenizer": cfg["tokenizer"]}, runs_root)


def data_fingerprint(runs_root: str | Path):
    """A `fingerprint(data_config) -> str` callable for harness.identity.assign_ids."""
    return lambda data_config: load_bench(data_config, runs_root).fingerprint


def training_tokens(config: RunConfig, bench: Bench, runs_root: str | Path):
    """The tokenised training set (ursa.train.TokenDataset), cached per data fingerprint and size."""
    from benchmarks.shapes.prompts import make_training_set
    from ursa.train import TokenDataset

    b = config.benchmark
    path = cache_dir(runs_root) / "data" / f"train-{bench.fingerprint}-{b.train_size}-{b.seed}.safetensors"
    if path.exists():
        t = load_file(path)
        return TokenDataset(t["text_ids"], t["text_mask"].bool(), t["visual_ids"])
    captions, videos = make_training_set(bench.world, b.train_size, b.seed)
    text_ids, text_mask = bench.text(captions)
    visual_ids = bench.tokenizer.encode(videos)
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"text_ids": text_ids, "text_mask": text_mask.to(torch.uint8), "visual_ids": visual_ids}, str(tmp))
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()
    return TokenDataset(text_ids, text_mask, visual_ids)


def suite(config: RunConfig, bench: Bench, task: str) -> list:
    """The prompts a task is sampled and scored on (eval suite for t2v; task suites otherwise)."""
    from benchmarks.shapes.prompts import load_suite

    b = config.benchmark
    n = b.eval_size if task == "t2v" else b.task_size
    return load_suite(TASK_SUITE[task], n, b.seed, bench.world)
