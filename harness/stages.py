"""The pipeline of one run: train -> sample -> score, each skipped once its done-marker exists.

Train and sample stages live in shared directories keyed by their stage ids (harness.identity),
linked into the run directory, and are computed under a lock: arms that differ only in sampling
settings train one model, arms that differ only in scorers sample once. An evaluation-only run
(`model.init_from` with `train.steps: 0`) has no training: its train stage records the model it
evaluates. Reference runs have a single `reference` stage: the benchmark's reference clips (floors
and ceilings) for every sampled task, scored like samples. A failure is caught here and written
to result.json (state failed, message and traceback); the caller moves on to the next run.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import traceback
from pathlib import Path

import torch
from safetensors.torch import save_file

from harness import cpu, media, plugins, progress
from harness.data import Data, cache_dir, data_for
from harness.records import RunResult, RunState
from harness.spec import RunConfig
from harness.store import (
    invalidate_stage,
    link_stage,
    mark_stage_done,
    read_json,
    read_json_or_none,
    record_result,
    shared_stage_dir,
    stage_dir,
    stage_done,
    stage_lock,
    sweep_temps,
    write_result,
)
from harness.tasks import TaskContext
from harness.token_shards import training_tokens
from ursa.io import atomic_write, atomic_write_json
from ursa.train import SNAPSHOTS

STAGES = ("train", "sample", "score")
SHARED = ("train", "sample")  # stages keyed by their own id and shared between runs


def run_path(config: RunConfig, data: Data, rdir: Path):
    """The probability path a run trains and samples with: `config.path` built on the tokenizer,
    with the settings it fits to the codebook (a calibrated metric path's (c, alpha)) stored in
    stages/train/path.json by the train stage and read back by the later ones."""
    if config.model.init_format == "release":  # the release's own path: its scheduler/ and codebook
        from ursa.release import build_release_path

        path = build_release_path(config.model.init_from)
        if path.vocab_size != data.tokenizer.vocab_size:
            raise ValueError(
                f"release scheduler codebook: expected {data.tokenizer.vocab_size} rows (the tokenizer's K), "
                f"got {path.vocab_size} in {config.model.init_from}/scheduler/scheduler_model.pth"
            )
        return path
    embeddings = data.tokenizer.codebook_embeddings()
    record = stage_dir(rdir, "train") / "path.json"
    if record.exists():
        fitted = read_json(record)
    else:
        fitted = config.path.fit(embeddings)
        if fitted:
            atomic_write_json(record, fitted)
    return config.path.model_copy(update=fitted).build(data.tokenizer.vocab_size, embeddings)


def build_model(config: RunConfig, data: Data):
    from ursa.model import URSAConfig, URSAModel

    m = config.model
    if m.init_from:
        return load_model(m.init_from)
    overrides = {
        "text_vocab_size": data.text.vocab_size,
        "visual_vocab_size": data.tokenizer.vocab_size,
        "mask_token": config.path.mask_token,
        **m.overrides,
    }
    return URSAModel(URSAConfig.preset(m.preset, **overrides), seed=config.train.seed)


def load_model(directory: str | Path):
    """A model saved by save_pretrained, or the authors' release folder (it has transformer/config.json)."""
    from ursa.model import URSAModel
    from ursa.release import load_transformer

    release = (Path(directory) / "transformer" / "config.json").is_file()
    return load_transformer(directory) if release else URSAModel.from_pretrained(directory)


def train_device(rdir: Path) -> str:
    """train.device of the run in `rdir` (it picks the process group's backend); cpu if unreadable."""
    try:
        return RunConfig.model_validate(read_json(rdir / "config.json")["config"]).train.device
    except Exception:  # noqa: BLE001 - a damaged run fails on its own; this only picks gloo or nccl
        return "cpu"


def follow_training(runs_root: str | Path, rdir: Path) -> None:
    """A task > 0 of a SLURM multi-task job: wait for rank 0 (which owns the run) to say whether the
    run needs training, and if so train with it; rank 0 alone writes, samples and scores."""
    from ursa import distributed

    try:
        if distributed.await_announcement(train_device(rdir)):
            _train_rank(str(runs_root), str(rdir))
    finally:
        distributed.shutdown()


def _train_rank(runs_root: str, rdir: str) -> None:
    """One process of a train stage on several: the stage's model, path and data, then ursa.train.train
    (which joins the process group from the environment; rank 0 writes the checkpoint)."""
    from ursa.train import train

    config = RunConfig.model_validate(read_json(Path(rdir) / "config.json")["config"])
    data = data_for(config, runs_root)
    main = os.environ.get("RANK", "0") == "0"  # rank 0 reports the run's live progress
    with progress.reporting(Path(rdir)) if main else contextlib.nullcontext():
        train(
            build_model(config, data),
            run_path(config, data, Path(rdir)),
            training_tokens(data, runs_root),
            config.train,
            stage_dir(Path(rdir), "train"),
            progress=False,
            on_step=(lambda step, loss: progress.update("train", step, config.train.steps, loss))
            if main
            else None,
        )


def stage_train(
    config: RunConfig, data: Data, rdir: Path, runs_root: Path, processes: int = 1
) -> None:
    """Train (or, evaluation-only, just record the model to evaluate) into stages/train; on
    `processes` local processes (torch.distributed) when > 1, the model then read back from the
    final checkpoint."""
    from ursa import distributed
    from ursa.train import CHECKPOINT, export_model, load_result, train

    out = stage_dir(rdir, "train")
    path = run_path(config, data, rdir)
    if config.evaluation_only:
        mark_stage_done(
            rdir, "train", {"steps": 0, "model": str(Path(config.model.init_from).resolve())}
        )
        return
    # cached before any process of a distributed stage reads it; tokenised (if streaming) on the training device
    tokens = training_tokens(data, runs_root, device=config.train.device)

    def report(step: int, loss: float) -> None:  # live progress (harness/progress.py) of rank 0
        progress.update("train", step, config.train.steps, loss)

    if (
        distributed.world_from_env() > 1
    ):  # rank 0 of a SLURM multi-task job: the other tasks wait for this
        distributed.announce(True, config.train.device)
        train(
            build_model(config, data),
            path,
            tokens,
            config.train,
            out,
            progress=False,
            on_step=report,
        )
        result = load_result(out)
        model = load_model(out / CHECKPOINT)
    elif processes > 1:
        import torch

        distributed.launch(
            _train_rank,
            processes,
            str(runs_root),
            str(rdir),
            threads=max(1, torch.get_num_threads() // processes),
            start_method="fork" if config.train.device == "cpu" else "spawn",
        )
        result = load_result(out)
        model = load_model(out / CHECKPOINT)
    else:
        model = build_model(config, data)
        result = train(model, path, tokens, config.train, out, progress=False, on_step=report)
    export_model(model, result, out / "model")  # the EMA weights when train.ema_decay > 0
    tail = result.losses[-max(1, len(result.losses) // 10) :]
    curve = [
        n for n in config.train.snapshot_steps() if n < result.steps
    ]  # the final model is "model"
    mark_stage_done(
        rdir,
        "train",
        {
            "steps": result.steps,
            "final_loss": sum(tail) / max(len(tail), 1),
            "machine": cpu.facts(),
            "shift": result.shift,
            "model": "model",
            "tokens_per_step": config.train.batch_size * math.prod(data.latent_shape()),
            "parameters": model.count_parameters(non_embedding=False),
            "non_embedding_parameters": model.count_parameters(),
            "curve": {str(n): f"{SNAPSHOTS}/step_{n}" for n in curve},
        },
    )


def model_points(rdir: Path) -> dict[int, Path]:
    """{training step: model directory} of the learning curve's points, the final model last
    (an evaluation-only run has one point, step 0: the model it evaluates)."""
    done = read_json(stage_dir(rdir, "train") / "done.json")
    train = stage_dir(rdir, "train")
    points = {int(n): train / d for n, d in done.get("curve", {}).items()}
    points[int(done["steps"])] = train / done["model"]
    return dict(sorted(points.items()))


def trained_model_dir(rdir: Path) -> Path:
    """The model a run samples from: its train stage's final model, or the evaluated one."""
    return list(model_points(rdir).values())[-1]


def _sample_dir(rdir: Path, step: int, final: int) -> Path:
    """Where the samples of one curve point live: stages/sample for the final model."""
    out = stage_dir(rdir, "sample")
    return out if step == final else out / "curve" / f"step_{step}"


def stage_sample(config: RunConfig, data: Data, rdir: Path) -> None:
    from ursa.sample import EulerSampler, for_precision

    s = config.sample
    path = run_path(config, data, rdir)
    points = model_points(rdir)
    final = max(points)
    for step, model_dir in points.items():  # every curve point with the same sampler seed
        out = _sample_dir(rdir, step, final)
        if (out / "samples.safetensors").is_file():
            continue
        model, sample_path = for_precision(load_model(model_dir).eval(), path, s.precision)
        sampler = EulerSampler(model, sample_path, s.sampler_config())
        ctx = TaskContext(sampler, data, s, torch.Generator().manual_seed(s.seed))
        videos: dict[str, torch.Tensor] = {}
        for k, task in enumerate(s.tasks):
            progress.update(f"sample (model of step {step})", k, len(s.tasks))
            generate = plugins.TASKS.get(task)
            prompts = data.benchmark.suite(task)
            with torch.no_grad():
                ids = torch.cat(
                    [
                        generate(ctx, prompts[i : i + s.batch_size])
                        for i in range(0, len(prompts), s.batch_size)
                    ]
                )
            videos[task] = data.tokenizer.decode(ids)
            if step == final:
                media.write_strip(out / f"strip_{task}.png", videos[task])
                media.write_gif(out / f"{task}.gif", videos[task])
        atomic_write(
            out / "samples.safetensors",
            lambda p: save_file({k: v.contiguous() for k, v in videos.items()}, str(p)),
        )
    mark_stage_done(
        rdir,
        "sample",
        {
            "tasks": list(s.tasks),
            "shift": s.shift_for(math.prod(data.latent_shape())),
            "curve": [n for n in points if n != final],
        },
    )


def score_videos(
    config: RunConfig, data: Data, runs_root: Path, task: str, videos: torch.Tensor, prompts: list
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Every scorer of `score.which` on one task's videos: (metrics, per-clip values); t2v
    metrics keep their names, other tasks' get a `<task>.` prefix."""
    metrics: dict[str, float] = {}
    clips: dict[str, list[float]] = {}
    for name in config.score.which:
        cls = plugins.SCORERS.get(name)
        scorer = cls(
            cls.Options.model_validate(config.score.options.get(name, {})),
            data.benchmark,
            cache_dir(runs_root),
        )
        m, c = scorer.evaluate(videos, prompts, task, config.score.seed)
        metrics.update(m)
        clips.update(c)
    prefix = "" if task == "t2v" else f"{task}."
    return (
        {f"{prefix}{k}": float(v) for k, v in metrics.items()},
        {f"{prefix}{k}": [float(x) for x in v] for k, v in clips.items()},
    )


def denoising_metrics(config: RunConfig, data: Data, model_dir: Path, path) -> dict[str, float]:
    """Held-out cross-entropy per noise level on the t2v suite's real clips (`score.denoising_bins`
    bins of t in [0, 1), at their centres): `denoise_ce@t=<centre>` and their mean `denoise_ce`."""
    from ursa.train import TokenDataset, denoising_loss

    bins = config.score.denoising_bins
    prompts = data.benchmark.suite("t2v")
    text_ids, text_mask = data.text([p.caption for p in prompts])
    held_out = TokenDataset(text_ids, text_mask, data.benchmark.real_ids(prompts, data.tokenizer))
    times = [(i + 0.5) / bins for i in range(bins)]
    ce = denoising_loss(
        load_model(model_dir),
        path,
        held_out,
        times,
        generator=torch.Generator().manual_seed(config.score.seed),
    )
    return {"denoise_ce": sum(ce) / bins, **{f"denoise_ce@t={t:.3g}": v for t, v in zip(times, ce)}}


def stage_score(config: RunConfig, data: Data, rdir: Path, runs_root: Path) -> dict[str, float]:
    """Scores of the final samples (and per-clip values), and of every learning-curve point."""
    from safetensors.torch import load_file

    points = model_points(rdir)
    final = max(points)
    path = run_path(config, data, rdir) if config.score.denoising_bins else None
    curve: dict[str, dict[str, float]] = {}
    curve_clips: dict[str, dict[str, list[float]]] = {}  # per-clip values at every curve point
    clips: dict[str, list[float]] = {}
    for step, model_dir in points.items():
        videos = load_file(_sample_dir(rdir, step, final) / "samples.safetensors")
        metrics: dict[str, float] = {}
        for task in config.sample.tasks:
            m, c = score_videos(
                config, data, runs_root, task, videos[task], data.benchmark.suite(task)
            )
            metrics.update(m)
            curve_clips.setdefault(str(step), {}).update(c)
            if step == final:
                clips.update(c)
        if path is not None:
            metrics.update(denoising_metrics(config, data, model_dir, path))
        curve[str(step)] = metrics
    metrics = dict(curve[str(final)])
    trained = read_json(stage_dir(rdir, "train") / "done.json")
    if "final_loss" in trained:
        metrics["train_loss"] = float(trained["final_loss"])
    out = stage_dir(rdir, "score")
    atomic_write_json(out / "clips.json", clips)
    atomic_write_json(out / "curve.json", curve)
    atomic_write_json(out / "curve_clips.json", curve_clips)
    atomic_write_json(out / "scores.json", metrics)
    mark_stage_done(rdir, "score")
    return metrics


def stage_reference(
    config: RunConfig, data: Data, rdir: Path, runs_root: Path, name: str
) -> dict[str, float]:
    """Reference clips of generator `name` on every sampled task's suite, scored like the samples
    (condition frames taken from the real clips), so task metrics get floors and ceilings."""
    out = stage_dir(rdir, "reference")
    metrics: dict[str, float] = {}
    for task in config.sample.tasks:
        prompts = data.benchmark.suite(task)
        videos = data.benchmark.generate_reference(name, prompts, data.tokenizer, config.score.seed)
        media.write_strip(out / f"strip_{task}.png", videos)
        metrics.update(score_videos(config, data, runs_root, task, videos, prompts)[0])
    atomic_write_json(out / "scores.json", metrics)
    mark_stage_done(rdir, "reference")
    return metrics


def link_shared_stages(runs_root: Path, rdir: Path, stage_ids: dict[str, str]) -> None:
    """rdir/stages/{train,sample} -> the shared stage directories of this run's stage ids."""
    for stage in SHARED:
        if stage in stage_ids:
            link_stage(rdir, stage, shared_stage_dir(runs_root, stage, stage_ids[stage]))


def run_stages(runs_root: str | Path, rdir: Path, processes: int = 1) -> RunResult:
    """Run every missing stage of the run in `rdir`; always leaves a final result.json (or says on
    stderr why it could not: the returned result then says so too). Ctrl-C records the run as
    interrupted (resumable) and re-raises. Progress is reported in `rdir`/progress.json meanwhile.
    `processes` > 1: the train stage runs on that many local processes (executor.tasks_per_node)."""
    with progress.reporting(rdir):
        return _run_stages(runs_root, rdir, processes)


def _run_stages(runs_root: str | Path, rdir: Path, processes: int = 1) -> RunResult:
    runs_root = Path(runs_root)
    meta = read_json_or_none(
        rdir / "config.json", "expected the runner to rewrite it from the plan"
    )
    if not isinstance(meta, dict) or "config" not in meta or "run" not in meta:
        raise ValueError(
            f"{rdir / 'config.json'}: unreadable or incomplete; expected the config.json `harness run` "
            f"writes (rerun `python -m harness run` to rewrite it from the plan)"
        )
    config = RunConfig.model_validate(meta["config"])
    result = RunResult.from_json(
        {
            **meta["run"],
            "state": RunState.RUNNING,
            "started": time.time(),
            "pid": os.getpid(),
            "machine": cpu.facts(),
        }
    )
    try:
        write_result(runs_root, rdir, result)
        data = data_for(config, runs_root)
        if result.reference is not None:
            if not stage_done(rdir, "reference"):
                invalidate_stage(rdir, "reference")
                stage_reference(config, data, rdir, runs_root, result.reference)
            result.metrics = read_json(stage_dir(rdir, "reference") / "scores.json")
        else:
            link_shared_stages(runs_root, rdir, result.stage_ids)
            for stage in STAGES:
                if stage_done(rdir, stage):
                    continue
                start = time.perf_counter()
                with stage_lock(stage_dir(rdir, stage).resolve()):
                    if stage_done(
                        rdir, stage
                    ):  # another worker computed the shared stage meanwhile
                        continue
                    # the stage is ours now: leftovers of killed writers and damaged outputs go
                    sweep_temps(stage_dir(rdir, stage).resolve(), locked=True)
                    invalidate_stage(rdir, stage)
                    if stage == "train":
                        stage_train(config, data, rdir, runs_root, processes)
                    elif stage == "sample":
                        stage_sample(config, data, rdir)
                    else:
                        progress.update("score", 0, 1)
                        stage_score(config, data, rdir, runs_root)
                result.timings[stage] = round(time.perf_counter() - start, 3)
            result.metrics = read_json(stage_dir(rdir, "score") / "scores.json")
            result.curve = read_json(stage_dir(rdir, "score") / "curve.json")
        result.skipped = data.benchmark.eval_skipped()
        result.state = RunState.DONE
    except KeyboardInterrupt:
        result.fail(
            RunState.INTERRUPTED,
            "interrupted (Ctrl-C) while running; the next `harness run` resumes it",
        )
        result.finished = time.time()
        record_result(runs_root, rdir, result)
        raise
    except Exception as exc:  # noqa: BLE001 - record and let the other runs go on
        result.fail(RunState.FAILED, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    result.finished = time.time()
    unrecorded = record_result(runs_root, rdir, result)
    if unrecorded is not None and result.state != RunState.FAILED:
        result.fail(RunState.FAILED, f"could not record its result: {unrecorded}")
    return result
