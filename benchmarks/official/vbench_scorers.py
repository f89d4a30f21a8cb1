"""VBench and VBench-I2V as scorer plug-ins (registered by benchmarks.official.plugin).

- `vbench.<dimension>`: one VBench 0.1.5 dimension, run in the vbench env (`python -m harness env
  vbench`, built on first use); `mode: custom_input` (default: the benchmark's own prompts) or
  `vbench_standard` (samples of VBench's prompt suite, 5 per prompt).
- `vbench_i2v.<dimension>`: vbench2_beta_i2v on the run's I2V samples, with the given first frames
  written as the evaluator's info file (i2v task only).

Every scorer checks its files at spec validation (`check`: one error lists every missing file,
where it is expected and how to obtain it) and caches its scores by samples + scorer version +
env / weights fingerprint (`score_cache`), so a rerun or a report never rescores. The two
families declare their Quality / Semantic / Total (I2V / Quality / Total) through `derive`.
Imports are lazy: the harness imports this module for every command.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from benchmarks.official import vbench_eval as vb
from benchmarks.official.resources import Resource
from harness.plugins import BENCHMARKS, SCORERS, Metric, Scorer

SCORER_VERSION = 1  # bump when a scorer computes something else from the same samples


def _missing_lines(resources: list[Resource]) -> list[str]:
    """One line per absent file: where it is expected and how to obtain it (the same file needed by
    several scorers gives the same line, listed once by spec validation)."""
    return [
        f"{r.path}{'/' if r.is_dir else ''} (obtain: {r.how})" for r in resources if not r.present()
    ]


def _per_clip(rows: Any, names: list[str]) -> list[float] | None:
    """Per-video rows of an eval-results entry in clip order (`names[n]`: file of clip n), or None."""
    if not isinstance(rows, list):
        return None
    by_name = {
        Path(r["video_path"]).name: r["video_results"]
        for r in rows
        if isinstance(r, dict) and isinstance(r.get("video_results"), (int, float))
    }
    if any(name not in by_name for name in names):
        return None
    return [float(by_name[name]) for name in names]


# ----------------------------------------------------------------------------- VBench


class VBenchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["custom_input", "vbench_standard"] = Field(
        "custom_input",
        description="custom_input: the benchmark's prompts; vbench_standard: VBench's suite",
    )
    device: str = Field("cpu", description="torch device of the evaluator")
    fps: float | None = Field(
        None, gt=0, description="mp4 frame rate (default: the benchmark's declared fps)"
    )
    lossless: bool = Field(
        True,
        description="lossless RGB H.264 (the evaluator sees the samples' exact pixels); "
        "false: yuv420p, as generators usually ship",
    )


class VBenchI2VOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field("cpu", description="torch device of the evaluator")
    fps: float | None = Field(
        None, gt=0, description="mp4 frame rate (default: the benchmark's declared fps)"
    )
    resolution: str = Field(
        "1-1", description="vbench2_beta_i2v resolution key (aspect ratio of the images)"
    )
    lossless: bool = Field(
        True,
        description="lossless RGB H.264 (the evaluator sees the samples' exact pixels); "
        "false: yuv420p, as generators usually ship",
    )


class _VBenchFamily(Scorer):
    """One VBench dimension; subclasses are generated per dimension below."""

    Options = VBenchOptions
    family: ClassVar[str] = "vbench"
    dimension: ClassVar[str] = ""
    table: ClassVar[dict[str, tuple[float, float, float]]] = vb.VBENCH_DIMENSIONS
    groups: ClassVar[tuple[str, ...]] = ("quality", "semantic")
    mode: ClassVar[str | None] = None  # fixed evaluator mode (i2v), else options.mode

    @classmethod
    def name(cls) -> str:
        return f"{cls.family}.{cls.dimension}"

    @classmethod
    def check(cls, options: BaseModel, config: Any) -> list[str]:
        mode = cls.mode or options.mode
        lines = []
        if mode == "custom_input" and cls.dimension in vb.CUSTOM_UNSUPPORTED:
            lines.append(
                f"{cls.name()} cannot run on custom inputs (VBench reads its prompt suite's auxiliary "
                f"info for {cls.dimension}): set score.options.{cls.name()}.mode: vbench_standard "
                f"with a benchmark whose t2v suite is VBench's prompts"
            )
        if mode == "vbench_standard" and cls.dimension in vb.STANDARD_PROTOCOL_MISSING:
            why = vb.STANDARD_PROTOCOL_MISSING[cls.dimension]
            lines.append(f"{cls.name()} in mode vbench_standard: {why}")
        bench = BENCHMARKS.get(config.benchmark.name)
        bench_options = bench.Options.model_validate(config.benchmark.options())
        if options.fps is None and bench.fps_of(bench_options) is None:
            lines.append(
                f"score.options.{cls.name()}.fps (the mp4 frame rate: benchmark "
                f"{config.benchmark.name!r} declares none with these options, and "
                f"VBench's motion dimensions depend on it)"
            )
        geometry = bench.geometry_of(bench_options)
        problem = vb.width_problem(
            cls.name(), cls.dimension, None if geometry is None else geometry[2]
        )
        if problem:
            lines.append(problem)
        resources = vb.required_resources([cls.dimension]) + vb.env_requirements([cls.dimension])
        return lines + _missing_lines(resources)

    def _fps(self) -> float:
        """The exported mp4s' frame rate: the option, else the benchmark's declared fps."""
        fps = self.options.fps or type(self.benchmark).fps_of(self.benchmark.options)
        if fps is None:
            raise ValueError(
                f"score.options.{self.name()}.fps: expected a frame rate (benchmark "
                f"{type(self.benchmark).__name__} declares none), got none"
            )
        return float(fps)

    def _env(self) -> Path:
        from harness.env import create_env, default_env_path, is_built

        path = default_env_path("vbench")
        if not is_built(path):
            print(
                f"{self.name()}: building the vbench environment at {path} (first use, about a minute; "
                f"`python -m harness env vbench` does it ahead)",
                file=sys.stderr,
                flush=True,
            )
        return create_env("vbench", path, progress=False)

    def score(self, videos: torch.Tensor, prompts: list, task: str, seed: int) -> dict[str, float]:
        return self.evaluate(videos, prompts, task, seed)[0]

    def evaluate(
        self, videos: torch.Tensor, prompts: list, task: str, seed: int
    ) -> tuple[dict[str, float], dict[str, list[float]]]:
        from benchmarks.official.score_cache import cached_scores, files_fingerprint, samples_digest
        from harness.env import MARKER, env_packages
        from harness.identity import sha256_of

        problem = vb.width_problem(
            self.name(), self.dimension, int(videos.shape[3])
        )  # geometry known only now
        if problem:
            raise ValueError(problem + ".")
        if self.dimension == "camera_motion":  # the evaluator reads the motion from each file name
            lacking = [p.caption for p in prompts if vb.camera_phrase(p.caption) is None]
            if lacking:
                motions = ", ".join(repr(m) for m in vb.CAMERA_MOTIONS)
                raise ValueError(
                    f"{self.name()}: expected every prompt to ask for a camera "
                    f"motion with one of {motions} (VBench-I2V reads it from the "
                    f"video's file name, camera_motion.py get_type), got "
                    f"{len(lacking)} of {len(prompts)} without, e.g. "
                    f"{lacking[0][:80]!r}."
                )
        captions = [p.caption for p in prompts]
        env = self._env()
        marker = json.loads((env / MARKER).read_text())
        digest = samples_digest(videos, captions)
        key = {
            "scorer": self.name(),
            "version": SCORER_VERSION,
            "options": self.options.model_dump(mode="json"),
            "fps": self._fps(),
            "samples": digest,
            "env": {
                **{k: marker.get(k) for k in ("requirements", "torch", "python")},
                "packages": sha256_of(env_packages(env)),
            },  # the env as resolved now
            "weights": files_fingerprint(
                vb.required_resources([self.dimension]) + vb.env_requirements([self.dimension], env)
            ),
        }
        if self.mode == "i2v":  # the given first frames enter the scores
            key["first_frames"] = samples_digest(self._first_frames(prompts), captions)

        def compute(work: Path) -> tuple[dict[str, float], dict[str, list[float]]]:
            videos_path, names, extra = self._export(videos, prompts, digest)
            result = vb.run_vbench(
                videos_path,
                work,
                "scores",
                [self.dimension],
                mode=self.mode or self.options.mode,
                device=self.options.device,
                env_path=env,
                **extra,
            )
            entry = json.loads(result.read_text())[self.dimension]
            metric = self.name()
            clips = _per_clip(entry[-1], names)
            return {metric: float(entry[0])}, ({metric: clips} if clips is not None else {})

        return cached_scores(self.cache_dir / "official" / "scores", key, compute)

    def _first_frames(self, prompts: list) -> torch.Tensor:
        """uint8 (N, H, W, 3): frame 0 of each prompt's real clip, the image an I2V sample was given."""
        return self.benchmark.real_videos(prompts)[:, 0]

    def _export(
        self, videos: torch.Tensor, prompts: list, digest: str
    ) -> tuple[Path, list[str], dict[str, Any]]:
        """(videos path for run_vbench, file name of each clip, extra run_vbench arguments)."""
        from benchmarks.official import export
        from benchmarks.official.score_cache import cached_export

        captions = [p.caption for p in prompts]
        exports = self.cache_dir / "official" / "exports"
        fps = self._fps()
        lossless = self.options.lossless
        tag = f"{digest[:24]}-fps{fps:g}{'-lossless' if lossless else ''}"
        if self.options.mode == "vbench_standard":
            root = exports / f"vbench_standard-{tag}"
            cached_export(
                root / self.dimension,
                lambda f: export.export_vbench_standard(
                    videos, captions, f.parent, self.dimension, fps=fps, lossless=lossless
                ),
            )
            return root, export.video_names(captions, 5), {}
        folder = cached_export(
            exports / f"vbench_custom-{tag}",
            lambda f: export.export_vbench_custom(videos, captions, f, fps=fps, lossless=lossless),
        )
        return folder, export.video_names(captions), {"prompt_file": folder / "prompts.json"}

    @classmethod
    def derive(cls, metrics: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
        """Quality / Semantic / Total (I2V / Quality / Total) over the dimensions present, 0-100, and
        the official script's figure (a missing dimension scored as raw 0) as `<group>_missing_as_0`."""
        raw = {
            d: float(metrics[f"{cls.family}.{d}"])
            for d in cls.table
            if f"{cls.family}.{d}" in metrics
        }
        if not raw:
            return {}, []
        s = vb.scores_from_raw(raw, i2v=cls.family == "vbench_i2v")
        out = {f"{cls.family}.{g}": s[g] for g in (*cls.groups, "total") if s[g] is not None}
        out.update(
            {f"{cls.family}.{g}_missing_as_0": s["official"][g] for g in (*cls.groups, "total")}
        )
        out[f"{cls.family}.coverage"] = len(raw) / len(cls.table)
        if s["complete"]:
            return out, []
        return out, [
            f"{cls.family} aggregates are partial: {', '.join(f'{cls.family}.{g}' for g in cls.groups)} "
            f"and {cls.family}.total are computed from the {len(raw)} of {len(cls.table)} dimensions "
            f"present ({', '.join(sorted(raw))}; {cls.family}.total needs every group); missing: "
            f"{', '.join(s['missing'])}. {cls.family}.*_missing_as_0 is the official script's figure, "
            f"which scores a missing dimension as raw 0."
        ]


class _VBenchI2VFamily(_VBenchFamily):
    """One VBench-I2V dimension (vbench2_beta_i2v) on the run's I2V samples."""

    family = "vbench_i2v"
    table = vb.I2V_DIMENSIONS
    groups = ("i2v", "quality")
    mode = "i2v"
    tasks = ("i2v",)
    Options = VBenchI2VOptions

    def _export(
        self, videos: torch.Tensor, prompts: list, digest: str
    ) -> tuple[Path, list[str], dict[str, Any]]:
        from benchmarks.official import export
        from benchmarks.official.score_cache import cached_export, samples_digest

        fps = self._fps()
        frames = self._first_frames(prompts)
        tag = samples_digest(frames, [self.dimension])[:12]  # the info file lists the dimension
        lossless = self.options.lossless
        folder = cached_export(
            self.cache_dir
            / "official"
            / "exports"
            / f"vbench_i2v-{digest[:24]}-{tag}-fps{fps:g}{'-lossless' if lossless else ''}",
            lambda f: export.export_vbench_i2v_custom(
                videos,
                frames,
                [p.caption for p in prompts],
                f,
                [self.dimension],
                fps=fps,
                lossless=lossless,
            ),
        )
        names = [f"{export.i2v_clip_name(n, p.caption)}-0.mp4" for n, p in enumerate(prompts)]
        return (
            folder / "videos",
            names,
            {"info_file": folder / export.I2V_INFO, "resolution": self.options.resolution},
        )


_DERIVED = {"vbench": ("quality", "semantic"), "vbench_i2v": ("i2v", "quality")}


def _family_metrics(family: str, dimension: str) -> tuple[Metric, ...]:
    """The dimension's raw score (0-1) and the family's derived aggregates (0-100 scale, but a raw
    score below a dimension's normalisation minimum makes them negative: unbounded)."""
    inf = float("inf")
    groups = (*_DERIVED[family], "total")
    return (
        Metric(f"{family}.{dimension}"),
        *(Metric(f"{family}.{g}", -inf, inf) for g in groups),
        *(Metric(f"{family}.{g}_missing_as_0", -inf, inf) for g in groups),
        Metric(f"{family}.coverage"),
    )


def _register(base: type[_VBenchFamily], dimensions: tuple[str, ...], what: str) -> None:
    for dim in dimensions:
        cls = type(
            f"{base.__name__}[{dim}]",
            (base,),
            {
                "dimension": dim,
                "metrics": _family_metrics(base.family, dim),
                "__module__": __name__,
                "__qualname__": f"{base.__qualname__}[{dim}]",
                "__doc__": f"{what}: {dim} (raw score; {base.family}.quality / .total derived in reports).",
            },
        )
        SCORERS.register(f"{base.family}.{dim}")(cls)


_register(_VBenchFamily, tuple(vb.VBENCH_DIMENSIONS), "VBench 0.1.5 dimension")
_register(_VBenchI2VFamily, vb.I2V_EVALUATOR_DIMENSIONS, "VBench-I2V dimension")
