"""The data side of a run: the benchmark, visual and text tokenizers it names (its training
tokens: harness.token_shards).

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
    fp = sha256_of(
        {
            "benchmark": [cfg["benchmark"]["name"], benchmark.fingerprint()],
            "tokenizer": [cfg["tokenizer"]["name"], tokenizer.fingerprint()],
            "text_tokenizer": [cfg["text_tokenizer"]["name"], text_cls.fingerprint(text)],
        }
    )[:16]
    return Data(benchmark, tokenizer, text, fp)


def load_data(config: dict[str, Any], runs_root: str | Path) -> Data:
    """The Data of a data config (harness.identity.data_config), built once, then read from the cache."""
    return _load(canonical_json(config), str(cache_dir(runs_root)))


def data_for(config: RunConfig, runs_root: str | Path) -> Data:
    return load_data(data_config(config), runs_root)


def data_fingerprint(runs_root: str | Path):
    """A `fingerprint(data_config) -> str` callable for harness.identity.assign_ids."""
    return lambda config: load_data(config, runs_root).fingerprint
