"""Sampling a released-shape URSA video: this project's sampler vs the authors' materialising step.

One 49 x 320 x 512 video = 13 x 40 x 64 latent tokens (FSQ320 tokenizer: 4x temporal, 8x8
spatial compression), 320 left-padded text tokens + BOV in front, classifier-free guidance (cond
and negative prompt batched, scale 7), from a 1.7B-shaped model with the release's conventions
(transformer/config.json with the authors' 1.7B defaults read by ursa.release) and random
weights in bf16. Two ways to take the same Euler steps:

- project: ursa.sample.EulerSampler: head only at the visual positions, fp32 logits, the metric
  path's velocity and jump chunked over tokens (ursa.paths.MetricPath);
- authors: as their release describes it (../shared/AUTHORS_RELEASE.md): logits for the whole
  sequence, then the posterior softmax, the distance to every code, the path probabilities and
  the velocity each materialised as a full (tokens, K) tensor in fp16.

Recorded per approach: wall time per step (device-synchronised, after one warm-up step) and peak
device memory (CUDA only). `--quick` runs a tiny model on a small grid on CPU as a smoke test.

    python -m benchmarks.perf.release_sample_bench [--quick] [--device cuda] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch

from ursa.model import URSAModel
from ursa.path_config import build_path
from ursa.release import read_transformer_config
from ursa.sample import EulerSampler, SamplerConfig
from ursa.schedule import beta, beta_dot
from ursa.tokenizers.fsq import fsq_codebook

VIDEO_LATENT = (13, 40, 64)  # 49 x 320 x 512 through FSQ320: (49 - 1) // 4 + 1, 320 // 8, 512 // 8
TEXT_LENGTH = 320  # max_prompt_length
QUICK = dict(
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    num_hidden_layers=2,
    head_dim=16,
    lm_vocab_size=512,
    vocab_size=512 + 64000,
    bov_token_id=500,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_shaped_model(overrides: dict, device: torch.device, dtype: torch.dtype) -> URSAModel:
    """A model with the release's conventions from a transformer/config.json holding only
    `overrides` (empty: the authors' 1.7B defaults), random weights in `dtype` on `device`."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "transformer").mkdir()
        (Path(tmp) / "transformer" / "config.json").write_text(json.dumps(overrides))
        config = read_transformer_config(tmp)
    with torch.device(device):
        model = URSAModel(config, seed=0)
    return model.to(dtype).eval()


def _shift_grid(steps: int, shift: float) -> list[float]:
    u = torch.arange(steps + 1, dtype=torch.float64) / steps
    return (u / (u + shift * (1 - u))).tolist()


@torch.no_grad()
def authors_step(
    z: torch.Tensor,
    x_t: torch.Tensor,
    t: float,
    h: float,
    emb: torch.Tensor,
    c: float,
    alpha: float,
    generator: torch.Generator,
    dtype: torch.dtype,
) -> torch.Tensor:
    """One Euler step the materialising way: z (N, K) guided logits, x_t long (N,), emb (K, D)
    L2-normalised -> long (N,). Every (N, K) intermediate is a full tensor in `dtype`."""
    probs = z.to(dtype).softmax(-1)  # (N, K) posterior
    x1 = probs.multinomial(1, generator=generator).squeeze(1)
    del probs
    e = emb.to(dtype)
    e1 = e[x1]  # (N, D)
    dist = (e1.square().sum(-1, keepdim=True) + e.square().sum(-1)) - 2 * (e1 @ e.T)  # (N, K)
    p = (dist * -float(beta(t, c, alpha))).softmax(-1)  # (N, K) p_t(x | x1)
    d_t = (e[x_t] - e1).square().sum(-1, keepdim=True)  # (N, 1)
    rate = float(beta_dot(t, c, alpha)) if t > 0 else 0.0  # their forced 0 at t = 0
    u = p * torch.relu(d_t - dist) * rate  # (N, K) velocity
    del dist, p
    u.scatter_(1, x_t[:, None], 0)
    total = u.float().sum(-1)
    jump = torch.rand(total.shape, generator=generator, device=total.device) < 1 - torch.exp(
        -h * total
    )
    out = x_t.clone()
    if bool(jump.any()):
        out[jump] = u[jump].multinomial(1, generator=generator).squeeze(1)
    return out


@torch.no_grad()
def authors_sample(
    model: URSAModel,
    text: torch.Tensor,
    neg: torch.Tensor,
    latent: tuple[int, int, int],
    steps: int,
    shift: float,
    scale: float,
    c: float,
    alpha: float,
    emb: torch.Tensor,
    dtype: torch.dtype,
    generator: torch.Generator,
    on_step,
) -> torch.Tensor:
    """The materialising loop: full-sequence logits from one batched cond + uncond forward."""
    K = model.config.visual_vocab_size
    n = math.prod(latent)
    x = torch.randint(K, (n,), generator=generator, device=text.device)
    grid = _shift_grid(steps, shift)
    for k in range(steps):
        t, h = grid[k], grid[k + 1] - grid[k]
        ids = torch.cat(
            [
                torch.cat([text, neg]),
                torch.full((2, 1), model.bov_id, device=text.device),
                (x + model.config.text_vocab_size).expand(2, -1),
            ],
            dim=1,
        )
        pos = _positions(text.shape[1], latent, text.device)
        hidden = model.backbone(input_ids=ids, position_ids=pos, use_cache=False).last_hidden_state
        logits = model.head(hidden)  # (2, S, K): every position, as theirs
        cond, uncond = logits[:, -(n + 1) : -1].to(dtype).unbind(0)
        z = uncond + scale * (cond - uncond) if t < 0.9 else cond
        del logits, hidden
        x = (
            z.argmax(-1)
            if k == steps - 1
            else authors_step(z, x, t, h, emb, c, alpha, generator, dtype)
        )
        on_step()
    return x.view(1, *latent)


def _positions(length: int, latent: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    from ursa.model import mrope_positions

    return mrope_positions(torch.ones(2, length, dtype=torch.bool, device=device), latent)


def _measure(device: torch.device, fn) -> dict:
    """Run fn(on_step) -> times per step after the first (warm-up) step, and peak memory."""
    stamps: list[float] = []

    def on_step() -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    stamps.append(time.perf_counter())
    fn(on_step)
    per_step = [b - a for a, b in zip(stamps[:-1], stamps[1:])]
    steady = per_step[1:] or per_step
    return {
        "first_step_s": per_step[0],
        "s_per_step": sum(steady) / len(steady),
        "steps": len(per_step),
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else None,
    }


def run(quick: bool = True, device: str = "cpu", steps: int = 4) -> dict:
    """Both approaches on one video (quick: a tiny model, latent (2, 4, 4), 16 text tokens)."""
    dev = torch.device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    step_dtype = (
        torch.float16 if dev.type == "cuda" else torch.float32
    )  # theirs: fp16 distances / softmax
    model = release_shaped_model(QUICK if quick else {}, dev, dtype)
    latent, length = ((2, 4, 4), 16) if quick else (VIDEO_LATENT, TEXT_LENGTH)
    g = torch.Generator().manual_seed(0)
    V = model.config.text_vocab_size
    text = torch.randint(V, (1, length), generator=g).to(dev)
    neg = torch.full((1, length), 0, dtype=torch.long).to(dev)  # "" left-padded: all pads
    emb = torch.nn.functional.normalize(fsq_codebook().to(dev), dim=-1, eps=1e-5)
    c, alpha, shift, scale = 3.0, 0.9, 3.0, 7.0
    out = {
        "device": str(dev),
        "dtype": str(dtype).removeprefix("torch."),
        "latent": list(latent),
        "tokens": math.prod(latent) + length + 1,
        "K": model.config.visual_vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
    }

    path = build_path("metric", vocab_size=emb.shape[0], embeddings=emb, c=c, alpha=alpha)

    class _Stepped(torch.nn.Module):  # the model, calling on_step after each forward's step
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.calls = model, 0

        def forward(self, *args):
            if self.calls:
                self.hook()  # the previous step (forward + jump) is done
            self.calls += 1
            return self.inner(*args)

    def project(on_step) -> None:
        stepped = _Stepped()
        stepped.hook = on_step
        sampler = EulerSampler(
            stepped, path, SamplerConfig(steps=steps, shift=shift, cfg_scale=scale, cfg_trunc=0.9)
        )
        with torch.no_grad():
            sampler.sample(
                text,
                torch.ones_like(text, dtype=torch.bool),
                latent,
                uncond_ids=neg,
                uncond_mask=torch.ones_like(neg, dtype=torch.bool),
                generator=torch.Generator(device=dev).manual_seed(0),
            )
        on_step()  # the last step

    out["project"] = _measure(dev, project)
    out["authors"] = _measure(
        dev,
        lambda on_step: authors_sample(
            model,
            text,
            neg,
            latent,
            steps,
            shift,
            scale,
            c,
            alpha,
            emb,
            step_dtype,
            torch.Generator(device=dev).manual_seed(0),
            on_step,
        ),
    )
    out["speedup"] = out["authors"]["s_per_step"] / out["project"]["s_per_step"]
    if dev.type == "cuda":
        out["memory_ratio"] = out["authors"]["peak_memory_gib"] / out["project"]["peak_memory_gib"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny model, small grid (CPU smoke test)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--steps",
        type=int,
        default=4,
        help="Euler steps per approach (time per step is the figure)",
    )
    args = ap.parse_args()
    print(json.dumps(run(args.quick, args.device, args.steps), indent=2))


if __name__ == "__main__":
    main()
