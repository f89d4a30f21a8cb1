"""The data side of a run: the benchmark, visual and text tokenizers it names, and its training tokens.

Built from the plug-in sections of a run config (harness/plugins.py); deterministic in them and
cached under `<runs_root>/_cache/` (tokenizer fits and tokenised training sets are shared by every
run with the same data config).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.shapes.cache import load_checked, rebuild_note, save_atomic
from harness import plugins
from harness.identity import canonical_json, data_config, sha256_of
from harness.spec import RunConfig


@dataclass
class Data:
    """The components of one data config and their joint fingerprint (enters run ids)."""

    benchmark: plugins.Benchmark
    tokenizer: Any  # ursa.tokenizers.base.VisualTokenizer
    text: Any  # ursa.tokenizers.text.TextTokenizer
    fingerprint: str

    def latent_shape(self) -> tuple[int, int, int]:
        """(T, h, w) of a training / t2v clip's id grid."""
        return self.tokenizer.latent_shape(*self.benchmark.geometry())


def cache_dir(runs_root: str | Path) -> Path:
    return Path(runs_root) / "_cache"


@functools.lru_cache(maxsize=8)
def _load(data_json: str, root: str) -> Data:
    cfg = json.loads(data_json)
    cache = Path(root)

    def options(registry: plugins.Registry, key: str) -> tuple[Any, Any]:
        section = dict(cfg[key])
        component = registry.get(section.pop("name"))
        return component, component.Options.model_validate(section)

    bench_cls, bench_opts = options(plugins.BENCHMARKS, "benchmark")
    benchmark = bench_cls(bench_opts, cache)
    tok_cls, tok_opts = options(plugins.VISUAL_TOKENIZERS, "tokenizer")
    tokenizer = tok_cls.build(tok_opts, benchmark, cache)
    text_cls, text_opts = options(plugins.TEXT_TOKENIZERS, "text_tokenizer")
    text = text_cls.build(text_opts, benchmark, cache)
    fp = sha256_of({"benchmark": [cfg["benchmark"]["name"], benchmark.fingerprint()],
                    "tokenizer": [cfg["tokenizer"]["name"], tokenizer.fingerprint()],
                    "text_tokenizer": [cfg["text_tokenizer"]["name"], text_cls.fingerprint(text)]})[:16]
    return Data(benchmark, tokenizer, text, fp)


def load_data(config: dict[str, Any], runs_root: str | Path) -> Data:
    """The Data of a data config (harness.identity.data_config), built once, then read from the cache."""
    return _load(canonical_json(config), str(cache_dir(runs_root)))


def data_for(config: RunConfig, runs_root: str | Path) -> Data:
    return load_data(data_config(config), runs_root)


def data_fingerprint(runs_root: str | Path):
    """A `fingerprint(data_config) -> str` callable for harness.identity.assign_ids."""
    return lambda config: load_data(config, runs_root).fingerprint


def training_tokens(data: Data, runs_root: str | Path, device: str = "cpu", progress: bool = False):
    """The tokenised training set, cached per data fingerprint: a ursa.shards.ShardDataset read
    lazily from token shards for a benchmark that `streams` (harness.token_shards writes them on first
    use, encoding on `device`, or reading the stored ids of a `pretokenized` one), else an in-memory
    ursa.train.TokenDataset."""
    from ursa.train import TokenDataset

    if data.benchmark.streams:
        from harness.token_shards import tokenize
        from ursa.shards import ShardDataset

        return ShardDataset(tokenize(data, runs_root, device=device, progress=progress))

    path = cache_dir(runs_root) / "data" / f"train-{data.fingerprint}.safetensors"
    keys = ("text_ids", "text_mask", "visual_ids")
    if path.exists():
        try:  # checksummed like the stages: a flipped bit is rebuilt, never trained on
            t, _ = load_checked(path, keys)
            return TokenDataset(t["text_ids"], t["text_mask"].bool(), t["visual_ids"])
        except ValueError as exc:
            rebuild_note(path, exc)
    captions, videos = data.benchmark.training_set()
    text_ids, text_mask = data.text(captions)
    visual_ids = data.tokenizer.encode(videos)
    tensors = {"text_ids": text_ids, "text_mask": text_mask.to(torch.uint8), "visual_ids": visual_ids}
    save_atomic(path, tensors, data.fingerprint)  # a unique temp name per writer
    return TokenDataset(text_ids, text_mask, visual_ids)
