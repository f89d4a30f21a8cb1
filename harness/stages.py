"""The pipeline of one run: train -> sample -> score, each skipped once its done-marker exists.

Reference runs (arm "ref:<name>") have a single `reference` stage: generate the reference
clips for the eval suite (real / reconstruction / shuffled / random) and score them, so every
report has its floors and ceilings. A failure is caught here and written to result.json
(state "failed", message and traceback); the caller moves on to the next run.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from harness import media
from harness.bench import Bench, bench_for, suite, training_tokens
from harness.spec import RunConfig
from harness.store import atomic_write_bytes, atomic_write_json, mark_stage_done, read_json, stage_dir, stage_done, \
    write_result

STAGES = ("train", "sample", "score")


def _shift(rule: str, shift: float, num_tokens: int) -> float:
    if rule == "resolution":  # the paper's resolution rule: larger token counts need a larger shift
        from ursa.schedule import shift_for_tokens

        return float(shift_for_tokens(num_tokens))
    return shift


def latent_shape(bench: Bench) -> tuple[int, int, int]:
    w = bench.world
    return bench.tokenizer.latent_shape(w.frames, w.height, w.width)


def build_path(config: RunConfig, bench: Bench, rdir: Path):
    """The probability path; a calibrated metric path stores its (c, alpha) in stages/train/path.json."""
    from ursa.paths import build_path as ursa_build_path

    p = config.path
    c, alpha = p.c, p.alpha
    record = stage_dir(rdir, "train") / "path.json"
    if p.kind == "metric" and p.calibrate:
        if record.exists():
            c, alpha = read_json(record)["c"], read_json(record)["alpha"]
        else:
            from ursa.schedule import calibrate_metric_path

            c, alpha = map(float, calibrate_metric_path(bench.tokenizer.codebook_embeddings()))
            atomic_write_json(record, {"c": c, "alpha": alpha})
    return ursa_build_path(p.kind, vocab_size=bench.tokenizer.vocab_size,
                           embeddings=bench.tokenizer.codebook_embeddings(), c=c, alpha=alpha, exponent=p.exponent)


def build_model(config: RunConfig, bench: Bench):
    from ursa.model import URSAConfig, URSAModel

    m = config.model
    if m.init_from:
        return URSAModel.from_pretrained(m.init_from)
    overrides = {"text_vocab_size": bench.text.vocab_size, "visual_vocab_size": bench.tokenizer.vocab_size,
                 "mask_token": config.path.kind == "masked", **m.overrides}
    return URSAModel(URSAConfig.preset(m.preset, **overrides), seed=config.train.seed)


def stage_train(config: RunConfig, bench: Bench, rdir: Path, runs_root: Path, progress: bool) -> None:
    from ursa.train import TrainConfig, train

    out = stage_dir(rdir, "train")
    t = config.train
    tc = TrainConfig(steps=t.steps, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
                     warmup_steps=t.warmup_steps, min_lr_ratio=t.min_lr_ratio, grad_clip=t.grad_clip,
                     shift=_shift(t.shift_rule, t.shift, int(torch.tensor(latent_shape(bench)).prod())),
                     frame_schedule=t.frame_schedule, p_first=t.p_first, p_first_last=t.p_first_last,
                     p_first_k=t.p_first_k, p_uncond=t.p_uncond, seed=t.seed, checkpoint_every=t.checkpoint_every, device=t.device,
                     bf16=t.bf16)
    model = build_model(config, bench)
    result = train(model, build_path(config, bench, rdir), training_tokens(config, bench, runs_root), tc, out,
                   progress=progress)
    model.save_pretrained(out / "model")
    tail = result.losses[-max(1, len(result.losses) // 10):]
    mark_stage_done(rdir, "train", {"steps": result.steps, "final_loss": sum(tail) / len(tail), "shift": tc.shift})


def long_windows(length: int, window: int, context_frames: int) -> int:
    """Fewest windows n with window + (n - 1) * (window - context_frames) >= length (latent frames)."""
    if not 1 <= context_frames < window:
        raise ValueError(f"sample.context_frames: expected an integer in [1, {window}) (the window's latent "
                         f"frames), got {context_frames}")
    return 1 + max(0, -(-(length - window) // (window - context_frames)))


def _sample_task(task: str, sampler, config: RunConfig, bench: Bench, prompts: list, generator) -> torch.Tensor:
    """ids long (B, T', h, w) for one batch of prompts of `task`."""
    from benchmarks.shapes.prompts import real_videos
    from ursa import sample as S

    text_ids, text_mask = bench.text([p.caption for p in prompts])
    kw: dict[str, Any] = {"generator": generator}
    if config.sample.cfg_scale != 1.0:  # unconditional branch: text fully masked out
        kw.update(uncond_ids=torch.zeros_like(text_ids[:, :1]), uncond_mask=torch.zeros_like(text_mask[:, :1]))
    T, h, w = latent_shape(bench)
    if task == "t2v":
        return S.text_to_video(sampler, text_ids, text_mask, (T, h, w), **kw)
    if task == "t2i":
        return S.text_to_image(sampler, text_ids, text_mask, (h, w), **kw)
    if task == "long":  # as many sliding windows as cover the suite's clip, cut to its length
        cfg = prompts[0].cfg  # the suite's clip geometry (LONG_WINDOWS x the world's frames)
        length = bench.tokenizer.latent_shape(cfg.frames, cfg.height, cfg.width)[0]
        c = config.sample.context_frames
        ids = S.long_video(sampler, text_ids, text_mask, (T, h, w), num_windows=long_windows(length, T, c),
                           context_frames=c, **kw)
        return ids[:, :length]
    real = bench.tokenizer.encode(real_videos(prompts))  # (B, F, h, w): the frames the task gives
    if task == "i2v":
        return S.image_to_video(sampler, text_ids, text_mask, real[:, 0], real.shape[1], **kw)
    if task == "interpolation":
        return S.interpolate(sampler, text_ids, text_mask, real[:, 0], real[:, -1], real.shape[1], **kw)
    k = len(prompts[0].condition_frames)
    return S.extrapolate(sampler, text_ids, text_mask, real[:, :k], real.shape[1], **kw)


def stage_sample(config: RunConfig, bench: Bench, rdir: Path, progress: bool) -> None:
    from tqdm import tqdm

    from ursa.model import URSAModel
    from ursa.sample import EulerSampler, SamplerConfig

    out = stage_dir(rdir, "sample")
    s = config.sample
    model = URSAModel.from_pretrained(stage_dir(rdir, "train") / "model").eval()
    shift = _shift(s.shift_rule, s.shift, int(torch.tensor(latent_shape(bench)).prod()))
    sampler = EulerSampler(model, build_path(config, bench, rdir),
                           SamplerConfig(steps=s.steps, shift=shift, cfg_scale=s.cfg_scale, cfg_trunc=s.cfg_trunc,
                                         argmax_last=s.argmax_last))
    generator = torch.Generator().manual_seed(s.seed)
    videos: dict[str, torch.Tensor] = {}
    for task in tqdm(s.tasks, desc="sample", disable=not progress):
        prompts = suite(config, bench, task)
        with torch.no_grad():
            ids = torch.cat([_sample_task(task, sampler, config, bench, prompts[i:i + s.batch_size], generator)
                             for i in range(0, len(prompts), s.batch_size)])
        videos[task] = bench.tokenizer.decode(ids)
        media.write_strip(out / f"strip_{task}.png", videos[task])
        media.write_gif(out / f"{task}.gif", videos[task])
    tmp = out / ".samples.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in videos.items()}, str(tmp))
    atomic_write_bytes(out / "samples.safetensors", tmp.read_bytes())
    tmp.unlink()
    mark_stage_done(rdir, "sample", {"tasks": list(videos), "shift": shift})


def score_videos(config: RunConfig, bench: Bench, task: str, videos: torch.Tensor, prompts: list) -> dict[str, float]:
    """Scores of one task's videos; t2v metrics keep their names, other tasks get a `<task>.` prefix."""
    from benchmarks.shapes import score

    report = score(videos, prompts, which=tuple(config.score.which), seed=config.score.seed)
    prefix = "" if task == "t2v" else f"{task}."
    return {f"{prefix}{k}": float(v) for k, v in report.metrics.items()}


def stage_score(config: RunConfig, bench: Bench, rdir: Path) -> dict[str, float]:
    from safetensors.torch import load_file

    videos = load_file(stage_dir(rdir, "sample") / "samples.safetensors")
    metrics: dict[str, float] = {}
    for task in config.sample.tasks:
        metrics.update(score_videos(config, bench, task, videos[task], suite(config, bench, task)))
    metrics["train_loss"] = float(read_json(stage_dir(rdir, "train") / "done.json")["final_loss"])
    atomic_write_json(stage_dir(rdir, "score") / "scores.json", metrics)
    mark_stage_done(rdir, "score")
    return metrics


def stage_reference(config: RunConfig, bench: Bench, rdir: Path, name: str) -> dict[str, float]:
    """Reference clips (real / reconstruction / shuffled / random) on every sampled task's suite, scored
    like the samples (condition frames taken from the real clips), so task metrics get floors and ceilings."""
    from benchmarks.shapes import generate_reference

    out = stage_dir(rdir, "reference")
    metrics: dict[str, float] = {}
    for task in config.sample.tasks:
        prompts = suite(config, bench, task)
        videos = generate_reference(name, prompts, bench.tokenizer, bench.world, config.score.seed)
        media.write_strip(out / f"strip_{task}.png", videos)
        metrics.update(score_videos(config, bench, task, videos, prompts))
    atomic_write_json(out / "scores.json", metrics)
    mark_stage_done(rdir, "reference")
    return metrics


def run_stages(runs_root: str | Path, rdir: Path, progress: bool = False) -> dict[str, Any]:
    """Run every missing stage of the run in `rdir`; always leaves a final result.json."""
    runs_root = Path(runs_root)
    meta = read_json(rdir / "config.json")
    config = RunConfig.model_validate(meta["config"])
    result = {**meta["run"], "state": "running", "metrics": {}, "error": None, "timings": {},
              "started": time.time(), "pid": os.getpid()}
    write_result(runs_root, rdir, result)
    try:
        bench = bench_for(config, runs_root)
        ref = meta["run"]["arm"].removeprefix("ref:") if meta["run"]["arm"].startswith("ref:") else None
        if ref is not None:
            if not stage_done(rdir, "reference"):
                stage_reference(config, bench, rdir, ref)
            result["metrics"] = read_json(stage_dir(rdir, "reference") / "scores.json")
        else:
            for stage in STAGES:
                if stage_done(rdir, stage):
                    continue
                start = time.perf_counter()
                if stage == "train":
                    stage_train(config, bench, rdir, runs_root, progress)
                elif stage == "sample":
                    stage_sample(config, bench, rdir, progress)
                else:
                    stage_score(config, bench, rdir)
                result["timings"][stage] = round(time.perf_counter() - start, 3)
            result["metrics"] = read_json(stage_dir(rdir, "score") / "scores.json")
        result["state"] = "done"
    except Exception as exc:  # noqa: BLE001 - record and let the other runs go on
        result["state"] = "failed"
        result["error"] = {"message": f"{type(exc).__name__}: {exc}"[:2000], "traceback": traceback.format_exc()}
    result["finished"] = time.time()
    write_result(runs_root, rdir, result)
    return result
