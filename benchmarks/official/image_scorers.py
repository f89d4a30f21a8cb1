"""DPG-Bench and Inception FID / KID / IS as scorer plug-ins (registered by benchmarks.official.plugin).

- `dpg` (t2i task): the 4 samples of each DPG-Bench prompt tiled 2x2 (export.export_dpg) and scored
  by dependency-graph VQA (benchmarks.official.dpg) with a registered VQA backend (`mplug` loads
  mPLUG-large from a local folder; more register with dpg.register_vqa_backend).
- `fid.inception`, `kid.inception`, `is.inception`: torch-fidelity's Inception-v3 (local weights)
  on the samples' frames against the benchmark's real clips of the same prompts; the three share
  one computation through the score cache.

Both check their files at spec validation and cache scores by samples + version + options + the
fingerprints of the files they read.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from benchmarks.official.envs import REPO_ROOT
from benchmarks.official.resources import Resource
from benchmarks.official.vbench_scorers import SCORER_VERSION, _missing_lines
from harness.plugins import SCORERS, Metric, Scorer

DPG_CATEGORIES = ("entity", "attribute", "relation", "global", "other")  # DPG-Bench's L1 categories


def _default(value: str | None, env: str, relative: str) -> Path:
    """An option's path, else $env, else <repo>/.cache/<relative> (resolved at use: paths of this
    machine stay out of the run ids)."""
    return Path(value or os.environ.get(env) or REPO_ROOT / ".cache" / relative)


def _csv(options: DPGOptions) -> Path:
    return _default(options.csv_path, "URSA_DPG_CSV", "dpg_bench/dpg_bench.csv")


def _model_dir(options: DPGOptions) -> Path:
    return _default(options.model_dir, "URSA_DPG_VQA", "dpg_bench/mplug")


# ----------------------------------------------------------------------------- DPG-Bench


class DPGOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csv_path: str | None = Field(
        None,
        description="ELLA's dpg_bench.csv (default $URSA_DPG_CSV, else "
        ".cache/dpg_bench/dpg_bench.csv)",
    )
    backend: str = Field(
        "mplug", description="registered VQA backend (benchmarks.official.dpg.VQA_BACKENDS)"
    )
    model_dir: str | None = Field(
        None,
        description="the backend's local weights folder (default $URSA_DPG_VQA, "
        "else .cache/dpg_bench/mplug)",
    )
    device: str = Field("cpu", description="torch device of the VQA model")


@SCORERS.register("dpg")
class DPGBench(Scorer):
    """DPG-Bench as upstream computes it (published figures): dependency-graph VQA over the 4
    samples of each prompt tiled 2x2 (0-100)."""

    Options = DPGOptions
    tasks = ("t2i",)
    metric: ClassVar[str] = "dpg"
    official: ClassVar[bool] = True  # upstream's two bugs reproduced (benchmarks.official.dpg)
    metrics = (Metric("dpg", 0.0, 100.0), *(Metric(f"dpg.{c}", 0.0, 100.0) for c in DPG_CATEGORIES))

    @classmethod
    def check(cls, options: DPGOptions, config: Any) -> list[str]:
        from benchmarks.official.dpg import CSV_URL, VQA_BACKENDS

        lines = _missing_lines([Resource(_csv(options), CSV_URL)])
        backend = VQA_BACKENDS.get(options.backend)
        if backend is None:
            return lines + [
                f"a registered VQA backend for dpg ({', '.join(sorted(VQA_BACKENDS))}), not "
                f"{options.backend!r} (benchmarks.official.dpg.register_vqa_backend adds one)"
            ]
        return lines + _missing_lines(backend.requirements(_model_dir(options)))

    def score(self, videos: torch.Tensor, prompts: list, task: str, seed: int) -> dict[str, float]:
        return self.evaluate(videos, prompts, task, seed)[0]

    def _groups(self, prompts: list) -> dict[str, list[int]]:
        """{item_id: the 4 clip indices of that DPG-Bench prompt}, in order of appearance."""
        from benchmarks.official.dpg import item_prompts

        by_text = item_prompts(_csv(self.options))
        groups: dict[str, list[int]] = defaultdict(list)
        for n, p in enumerate(prompts):
            item = getattr(p, "item_id", None) or by_text.get(p.caption.strip())
            if item is None:
                raise ValueError(
                    f"dpg: prompt {p.caption[:60]!r} is not a DPG-Bench prompt of "
                    f"{_csv(self.options)} (expected an `item_id` on the prompt or its text "
                    f"in the CSV's `text` column)"
                )
            groups[str(item)].append(n)
        bad = {k: len(v) for k, v in groups.items() if len(v) != 4}
        if bad:
            item, count = next(iter(bad.items()))
            raise ValueError(
                f"dpg: expected 4 samples per DPG-Bench prompt (tiled 2x2), got {count} for item "
                f"{item!r} ({len(bad)} item(s) wrong)"
            )
        return dict(groups)

    def evaluate(
        self, videos: torch.Tensor, prompts: list, task: str, seed: int
    ) -> tuple[dict[str, float], dict[str, list[float]]]:
        from benchmarks.official.dpg import VQA_BACKENDS, score_folder
        from benchmarks.official.export import export_dpg
        from benchmarks.official.score_cache import cached_scores, files_fingerprint, samples_digest

        groups = self._groups(prompts)
        backend = VQA_BACKENDS[self.options.backend]
        key = {
            "scorer": self.metric,
            "version": SCORER_VERSION,
            "options": self.options.model_dump(mode="json"),
            "samples": samples_digest(videos, [p.caption for p in prompts]),
            "files": files_fingerprint(
                [Resource(_csv(self.options), ""), *backend.requirements(_model_dir(self.options))]
            ),
        }

        def compute(work: Path) -> tuple[dict[str, float], dict[str, list[float]]]:
            images = videos[:, 0]  # (N, H, W, 3): a t2i sample is a one-frame clip
            tiles = torch.stack([images[idx] for idx in groups.values()])  # (M, 4, H, W, 3)
            folder = export_dpg(tiles, list(groups), work / "images")
            result = score_folder(
                folder,
                _csv(self.options),
                backend(_model_dir(self.options), self.options.device),
                official_compat=self.official,
                progress=False,
            )
            per_clip = [0.0] * len(prompts)
            for item, idx in groups.items():
                for n in idx:  # each clip carries its prompt's image score
                    per_clip[n] = 100.0 * result.per_image.get(item, 0.0)
            name = self.metric
            metrics = {
                name: result.score,
                **{f"{name}.{k}": v for k, v in result.l1.items() if k in DPG_CATEGORIES},
            }
            # upstream skips some images from the score: their clips have no value then
            return metrics, ({} if result.skipped else {name: per_clip})

        return cached_scores(self.cache_dir / "official" / "scores", key, compute)


@SCORERS.register("dpg_fixed")
class DPGBenchFixed(DPGBench):
    """DPG-Bench with upstream's two bugs fixed (every CSV row; categories over all 4 tiles): not
    comparable with published DPG-Bench figures, hence its own name."""

    metric = "dpg_fixed"
    official = False
    metrics = (
        Metric("dpg_fixed", 0.0, 100.0),
        *(Metric(f"dpg_fixed.{c}", 0.0, 100.0) for c in DPG_CATEGORIES),
    )

    @classmethod
    def derive(cls, metrics: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
        if "dpg_fixed" not in metrics:
            return {}, []
        return {}, [
            "dpg_fixed is DPG-Bench with upstream's two bugs fixed (the first CSV row "
            "kept; category scores over all 4 tiles, not the last): it differs from "
            "published DPG-Bench figures; the `dpg` scorer reproduces upstream's "
            "computation for those."
        ]


# ----------------------------------------------------------------------------- Inception FID / KID / IS


class InceptionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights_path: str | None = Field(
        None,
        description="Inception-v3 weights (default $URSA_INCEPTION_WEIGHTS, "
        "else torch hub's checkpoints folder)",
    )
    frames: Literal["all", "first"] = Field(
        "all", description="which frames of each clip are images"
    )
    device: str = Field("cpu", description="torch device")
    batch_size: int = Field(32, ge=1)
    kid_subset_size: int = Field(1000, ge=2, description="capped at the smaller set size")


class _Inception(Scorer):
    """torch-fidelity Inception-v3 metrics of the samples' frames against the real clips' frames."""

    Options = InceptionOptions
    output: ClassVar[str] = ""  # the metric this scorer reports

    @classmethod
    def check(cls, options: InceptionOptions, config: Any) -> list[str]:
        from benchmarks.official.inception import INCEPTION_URL, inception_weights_path

        weights = inception_weights_path(options.weights_path)
        return _missing_lines(
            [
                Resource(
                    weights,
                    f"download {INCEPTION_URL} there, or set "
                    "$URSA_INCEPTION_WEIGHTS / weights_path",
                )
            ]
        )

    def score(self, videos: torch.Tensor, prompts: list, task: str, seed: int) -> dict[str, float]:
        return self.evaluate(videos, prompts, task, seed)[0]

    def evaluate(
        self, videos: torch.Tensor, prompts: list, task: str, seed: int
    ) -> tuple[dict[str, float], dict[str, list[float]]]:
        from benchmarks.official.inception import inception_metrics, inception_weights_path
        from benchmarks.official.score_cache import cached_scores, files_fingerprint, samples_digest

        captions = [p.caption for p in prompts]
        real = self.benchmark.real_videos(prompts)
        weights = inception_weights_path(self.options.weights_path)
        key = {
            "scorer": "inception",
            "version": SCORER_VERSION,
            "small_n": 1,  # N, IS splits and KID subsets in the entry
            "options": self.options.model_dump(mode="json"),
            "seed": seed,
            "samples": samples_digest(videos, captions),
            "real": samples_digest(real, captions),
            "weights": files_fingerprint([Resource(weights, "")]),
        }

        def frames(x: torch.Tensor) -> torch.Tensor:  # (N, F, H, W, 3) -> (N * F', H, W, 3)
            return (x[:, :1] if self.options.frames == "first" else x).flatten(0, 1)

        def compute(work: Path) -> tuple[dict[str, float], dict[str, list[float]]]:
            m = inception_metrics(
                frames(videos),
                frames(real),
                weights_path=weights,
                device=self.options.device,
                batch_size=self.options.batch_size,
                kid_subset_size=self.options.kid_subset_size,
                seed=seed,
            )
            return {
                "fid.inception": m["frechet_inception_distance"],
                "kid.inception": m["kernel_inception_distance_mean"],
                "is.inception": m["inception_score_mean"],
                "n": m["n_generated"],
                "is_splits": m["is_splits"],
                "kid_subsets": m["kid_subsets"],
            }, {}

        metrics, _ = cached_scores(self.cache_dir / "official" / "scores", key, compute)
        return {self.output: metrics[self.output], f"{self.output}.n": metrics["n"]}, {}

    caveat: ClassVar[str] = ""  # what a small N does to this metric (the report prints it with N)

    @classmethod
    def derive(cls, metrics: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
        """A note per N: the figure is on N images (frames), with its small-sample caveat."""
        n = metrics.get(f"{cls.output}.n")
        if cls.output not in metrics or n is None:
            return {}, []
        return {}, [
            f"{cls.output} is on N = {n:g} generated images (frames: those of one clip "
            f"are correlated, so the effective N is smaller) against as many real ones; "
            f"{cls.caveat}"
        ]


@SCORERS.register("fid.inception")
class InceptionFID(_Inception):
    """FID with torch-fidelity's Inception-v3 (local weights) against the real clips' frames."""

    output = "fid.inception"
    metrics = (
        Metric("fid.inception", 0.0, float("inf"), higher_is_better=False),
        Metric("fid.inception.n", 0.0, float("inf")),
    )
    caveat = (
        "FID is biased upwards at small N (the bias shrinks roughly like 1/N; published "
        "FIDs use 50,000 images): compare FIDs only at equal N, never with published "
        "figures."
    )


@SCORERS.register("kid.inception")
class InceptionKID(_Inception):
    """KID (mean over subsets) with torch-fidelity's Inception-v3 against the real clips' frames."""

    output = "kid.inception"
    metrics = (
        Metric("kid.inception", float("-inf"), float("inf"), higher_is_better=False),
        Metric("kid.inception.n", 0.0, float("inf")),
    )
    caveat = (
        "KID is unbiased but noisy at small N; when N is at most kid_subset_size its subsets "
        "would all be the whole sets, so it is one estimate over them (no spread across "
        "subsets)."
    )


@SCORERS.register("is.inception")
class InceptionIS(_Inception):
    """Inception Score (mean over splits) of the samples' frames, torch-fidelity's Inception-v3."""

    output = "is.inception"
    metrics = (
        Metric("is.inception", 1.0, float("inf")),
        Metric("is.inception.n", 0.0, float("inf")),
    )
    caveat = (
        "IS uses min(10, N // 10) splits of at least 10 images (torch-fidelity's fixed 10 "
        "splits give NaN below 10 images and exactly 1.0 at 10), and is refused below 10; "
        "small splits bias it downwards, so compare IS only at equal N, never with published "
        "figures."
    )
