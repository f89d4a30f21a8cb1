"""Overhead of ursa.sample relative to the model it drives.

Sampler overhead = (sampler wall time per Euler step - model forward time per step) / forward
time, measured in one sample() call with the forward timed inside (device-synchronised), at the
tiny preset with the embedded vocabulary size (K = 512, metric path on a random codebook) and at
K = 64000 (metric path on the FSQ (8,8,8,5,5,5) grid codebook).

The training loop's overhead against a bare forward + backward is the `train` suite's
(benchmarks/perf/train_bench.py).
"""

from __future__ import annotations

import time

import torch

from ursa.model import URSAConfig, URSAModel
from ursa.path_config import build_path
from ursa.sample import EulerSampler, SamplerConfig
from ursa.tokenizers.fsq import fsq_codebook


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _TimedModel:
    """Calls `model` and accumulates its device-synchronised forward time in `elapsed`."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model, self.device, self.elapsed = model, device, 0.0

    def __call__(self, *args):
        _sync(self.device)
        start = time.perf_counter()
        out = self.model(*args)
        _sync(self.device)
        self.elapsed += time.perf_counter() - start
        return out


def _text(batch: int, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(0))
    return ids.to(device), torch.ones(batch, length, dtype=torch.bool, device=device)


def sampler_overhead(
    vocab: int,
    embeddings: torch.Tensor,
    latent: tuple[int, int, int],
    batch: int,
    steps: int,
    device: torch.device,
    preset: str = "tiny",
) -> dict:
    """Per-step sampler time outside the forward, and its ratio to the forward time. The
    overhead is O(K) elementwise work per token (draw x1_hat, velocity, jump) against a forward
    whose head alone is O(hidden x K), so the ratio falls as the model widens."""
    model = (
        URSAModel(URSAConfig.preset(preset, text_vocab_size=256, visual_vocab_size=vocab), seed=0)
        .to(device)
        .eval()
    )
    path = build_path("metric", vocab_size=vocab, embeddings=embeddings.to(device))
    timed = _TimedModel(model, device)
    text = _text(batch, 16, device)
    EulerSampler(timed, path, SamplerConfig(steps=2)).sample(*text, latent)  # warm-up
    timed.elapsed = 0.0
    gen = torch.Generator(device=device).manual_seed(0)
    _sync(device)
    start = time.perf_counter()
    EulerSampler(timed, path, SamplerConfig(steps=steps)).sample(*text, latent, generator=gen)
    _sync(device)
    total = time.perf_counter() - start
    forward, outside = timed.elapsed / steps, (total - timed.elapsed) / steps
    return {
        "preset": preset,
        "K": vocab,
        "tokens": batch * latent[0] * latent[1] * latent[2],
        "steps": steps,
        "forward_ms": 1e3 * forward,
        "sampler_ms_per_step": 1e3 * outside,
        "overhead_ratio": outside / forward,
    }


def run(quick: bool = True, device: str = "cpu") -> dict:
    """The measurements side by side in this process; quick uses fewer steps/tokens."""
    dev = torch.device(device)
    steps = 5 if quick else 10
    latent, batch = ((2, 8, 8), 2) if quick else ((3, 8, 8), 4)  # 256 / 768 tokens
    emb512 = torch.randn(512, 8, generator=torch.Generator().manual_seed(0))
    out = {
        "device": str(dev),
        "sampler_k512": sampler_overhead(512, emb512, latent, batch, steps, dev),
        "sampler_k64000": sampler_overhead(64000, fsq_codebook(), latent, batch, steps, dev),
    }
    if not quick:  # the real 0.6B backbone (28 layers, hidden 1024) at K = 64000, 256 tokens
        out["sampler_0.6B_k64000"] = sampler_overhead(
            64000, fsq_codebook(), (1, 16, 16), 1, 2, dev, preset="0.6B"
        )
    return out
