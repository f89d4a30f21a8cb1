"""Training throughput: tokens/s and model FLOP utilisation (MFU) of ursa.train's step, its
efficiency against the bare forward + backward, and scaling from 1 to 2 processes.

- Step figures (`step_<preset>`): the real train() loop (timesteps, per-clip corruption along the
  metric path on the FSQ codebook, K = 64000, forward in bf16 autocast, CE, backward, clipping,
  fused AdamW, EMA off) against a bare forward + loss + backward of the same model on the same
  clean batch (both with the model's chunked head loss); efficiency = bare time / train time
  (target >= 0.90). On CUDA: the 0.6B and 1.7B presets, batch 2 clips of a (5, 32, 32) latent
  (5,120 visual + 32 text tokens each: 10,304 tokens a step; a 17-frame 256x256 clip at 4x8x8
  compression), which fits the 1.7B model with fp32 AdamW state in well under 80 GB. On CPU:
  the tiny preset.
- Head figures (`head_<tokens>`): forward + backward of the visual head's loss at the 0.6B
  shape (hidden 1024, K = 64000), the plain float32-logits cross-entropy against ursa/loss.py's
  chunked one: median time and peak extra memory (CUDA: allocator peak; CPU: peak RSS of a
  fresh process per variant).
- MFU = model FLOPs per step / step time / peak. Model FLOPs per step, counting a multiply-add
  as 2 and backward as twice forward:
      6 * (N_backbone * S + N_head * S_visual) * B  +  12 * layers * heads * head_dim * S^2 * B
  N_backbone: backbone parameters without the embedding table (a lookup, no FLOPs); N_head: the
  visual head (applied at visual positions only); S: sequence length (text + BOV + visual).
  Peak: dense bf16 tensor-core peak of the device, read from its name (`peak_bf16_flops`): H100 /
  H200 SXM 989 TFLOP/s, H100 PCIe 756, H100 / H200 NVL 835; other devices report MFU as null.
- Scaling (`scaling_cpu_gloo`): the same global batch on 1 process and on 2 (DDP, gloo, one
  thread each); efficiency = t(1) / (2 * t(2)). CPU gloo is not the target; it proves the
  mechanics and shows the all-reduce cost at a small model.

Standalone: python -m benchmarks.perf.train_bench --device cuda [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ursa import distributed
from ursa.loss import linear_cross_entropy
from ursa.model import URSAConfig, URSAModel
from ursa.path_config import build_path
from ursa.tokenizers.fsq import fsq_codebook
from ursa.train import TokenDataset, train
from ursa.train_config import TrainConfig

# dense bf16 tensor-core peak by device-name marker, the first that matches (variants before the
# family: "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H200")
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H200 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
)
TEXT_LEN = 32


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_flops(
    config: URSAConfig, batch: int, latent: tuple[int, int, int], text_len: int = TEXT_LEN
) -> float:
    """Model FLOPs of one training step (forward + backward) by the formula in the module docstring."""
    visual = math.prod(latent)
    seq = text_len + 1 + visual
    h = config.hidden_size
    per_layer = (
        h * config.num_heads * config.head_dim * 2  # q, o
        + h * config.num_kv_heads * config.head_dim * 2  # k, v
        + 3 * h * config.intermediate_size
    )  # SwiGLU gate, up, down
    n_backbone = config.num_layers * per_layer
    n_head = h * config.visual_vocab_size
    attention = 12 * config.num_layers * config.num_heads * config.head_dim * seq * seq
    return float(batch * (6 * (n_backbone * seq + n_head * visual) + attention))


def peak_bf16_flops(name: str) -> float | None:
    """Dense bf16 FLOP/s of the GPU called `name` (torch.cuda.get_device_name), None if unknown."""
    return next((v for marker, v in PEAK_BF16_FLOPS if marker.lower() in name.lower()), None)


def _peak(device: torch.device) -> float | None:
    return peak_bf16_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def _data(config: URSAConfig, batch: int, latent: tuple[int, int, int]) -> TokenDataset:
    g = torch.Generator().manual_seed(0)
    return TokenDataset(
        torch.randint(0, config.text_vocab_size, (batch, TEXT_LEN), generator=g),
        torch.ones(batch, TEXT_LEN, dtype=torch.bool),
        torch.randint(0, config.visual_vocab_size, (batch, *latent), generator=g),
    )


def step_figures(
    preset: str,
    batch: int,
    latent: tuple[int, int, int],
    steps: int,
    device: torch.device,
    compile: bool = False,
    **overrides,
) -> dict:
    """Train-loop vs bare forward+backward step time, tokens/s, MFU and peak memory of one preset
    (compile: both with the blocks compiled, ursa.parallel.compile_blocks; the two warm-up steps absorb
    the compilation)."""
    config = URSAConfig.preset(preset, **overrides)
    bf16 = device.type == "cuda"
    data = _data(config, batch, latent)
    embeddings = (
        fsq_codebook()
        if config.visual_vocab_size == 64000
        else torch.randn(config.visual_vocab_size, 8, generator=torch.Generator().manual_seed(0))
    )
    path = build_path(
        "metric", vocab_size=config.visual_vocab_size, embeddings=embeddings.to(device)
    )
    stamps: list[float] = []

    def on_step(step: int, loss: float) -> None:  # reading the loss back syncs the device already
        stamps.append(time.perf_counter())

    with torch.device(
        device
    ):  # initialise the weights where they train (a 1.7B init on CPU takes minutes)
        model = URSAModel(config, seed=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as out:
        # stop_after returns before the final checkpoint (a 1.7B model's AdamW state is 20 GB of disk)
        train(
            model,
            path,
            data,
            TrainConfig(
                steps=steps + 3,
                batch_size=batch,
                device=str(device),
                bf16=bf16,
                checkpoint_every=10**9,
                warmup_steps=1,
                corruption="clip",
                compile=compile,
            ),
            out,
            progress=False,
            on_step=on_step,
            stop_after=steps + 2,
        )
    train_s = (stamps[-1] - stamps[1]) / steps  # two warm-up steps
    train_mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None

    model.zero_grad(set_to_none=True)
    d = data.to(device)
    for i in range(steps + 2):
        if i == 2:
            _sync(device)
            start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        with torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=bf16
        ):  # the loss the loop uses
            loss = (
                model(d.text_ids, d.visual_ids, None, targets=d.visual_ids) / d.visual_ids.numel()
            )  # blocks compiled by train() when `compile`
        loss.backward()
    _sync(device)
    bare_s = (time.perf_counter() - start) / steps
    params = sum(p.numel() for p in model.parameters())
    del model, loss
    if device.type == "cuda":
        torch.cuda.empty_cache()
    tokens = batch * (TEXT_LEN + 1 + math.prod(latent))
    flops = model_flops(config, batch, latent)
    peak = _peak(device)
    return {
        "preset": preset,
        "compile": compile,
        "batch": batch,
        "latent": list(latent),
        "tokens_per_step": tokens,
        "params": params,
        "train_step_ms": 1e3 * train_s,
        "bare_fwd_bwd_ms": 1e3 * bare_s,
        "efficiency_bare_over_train": bare_s / train_s,
        "tokens_per_s": tokens / train_s,
        "model_tflops_per_step": flops / 1e12,
        "achieved_tflops": flops / train_s / 1e12,
        "mfu": flops / train_s / peak if peak else None,
        "peak_tflops": peak / 1e12 if peak else None,
        "max_memory_gb": train_mem,
    }


def _plain_head_loss(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """The head as it was before ursa/loss.py: whole float32 logits, then cross-entropy."""
    return F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="sum")


HEAD_LOSSES = {"plain": _plain_head_loss, "chunked": linear_cross_entropy}


def _head_run(
    kind: str, tokens: int, hidden_size: int, vocab: int, steps: int, device: str
) -> dict:
    """Seconds and peak extra memory of forward + backward of one head loss (on CPU: peak RSS of
    this fresh process above what it held before the first call)."""
    dev = torch.device(device)
    g = torch.Generator(device=dev).manual_seed(0)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    hidden = torch.randn(tokens, hidden_size, device=dev, dtype=dtype, generator=g).requires_grad_()
    weight = (0.02 * torch.randn(vocab, hidden_size, device=dev, generator=g)).requires_grad_()
    targets = torch.randint(0, vocab, (tokens,), device=dev, generator=g)
    fn = HEAD_LOSSES[kind]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    times = []
    for _ in range(steps + 1):  # the first is a warm-up
        _sync(dev)
        start = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = fn(hidden, weight, targets)
        loss.backward()
        _sync(dev)
        times.append(time.perf_counter() - start)
        hidden.grad = weight.grad = None
    if dev.type == "cuda":
        extra = (torch.cuda.max_memory_allocated(dev) - base) / 2**20
    else:
        extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    return {"ms": 1e3 * sorted(times[1:])[len(times[1:]) // 2], "peak_extra_mib": extra}


def head_figures(
    tokens: int, hidden_size: int, vocab: int, steps: int, device: torch.device
) -> dict:
    """The visual head's loss (Linear(hidden, K) + cross-entropy, forward + backward), the plain
    float32-logits version against ursa/loss.py's chunked one; each in a fresh process on CPU so the
    peak RSS is its own."""
    out: dict = {
        "tokens": tokens,
        "hidden": hidden_size,
        "K": vocab,
        "logits_fp32_mib": tokens * vocab * 4 / 2**20,
    }
    for kind in HEAD_LOSSES:
        if device.type == "cuda":
            out[kind] = _head_run(kind, tokens, hidden_size, vocab, steps, str(device))
            torch.cuda.empty_cache()
        else:
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                out[kind] = pool.apply(_head_run, (kind, tokens, hidden_size, vocab, steps, "cpu"))
    out["speedup"] = out["plain"]["ms"] / out["chunked"]["ms"]
    out["memory_ratio"] = out["plain"]["peak_extra_mib"] / max(
        out["chunked"]["peak_extra_mib"], 1e-9
    )
    return out


def _scaling_worker(out: str, batch: int, steps: int) -> None:
    rank = distributed.init_from_env()
    config = URSAConfig.preset("small", text_vocab_size=256, visual_vocab_size=512)
    stamps: list[float] = []
    path = build_path("mixture", vocab_size=512)
    with tempfile.TemporaryDirectory() as tmp:
        train(
            URSAModel(config, seed=0),
            path,
            _data(config, batch, (2, 8, 8)),
            TrainConfig(steps=steps + 1, batch_size=batch, checkpoint_every=10**9),
            tmp,
            progress=False,
            on_step=lambda s, loss: stamps.append(time.perf_counter()),
        )
    if rank.main:
        Path(out).write_text(json.dumps((stamps[-1] - stamps[0]) / steps))


def scaling_cpu(batch: int, steps: int) -> dict:
    """Step time of one global batch on 1 process and on 2 DDP processes (gloo, 1 thread each)."""
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2):
            out = Path(tmp) / f"{n}.json"
            distributed.launch(
                _scaling_worker, n, str(out), batch, steps, threads=1, start_method="spawn"
            )
            times[n] = json.loads(out.read_text())
    return {
        "preset": "small",
        "global_batch": batch,
        "latent": [2, 8, 8],
        "step_ms_1proc": 1e3 * times[1],
        "step_ms_2proc": 1e3 * times[2],
        "speedup": times[1] / times[2],
        "scaling_efficiency": times[1] / (2 * times[2]),
    }


def run(quick: bool = True, device: str = "cpu") -> dict:
    """CPU scaling first (forked workers must not inherit CUDA), then the step figures."""
    dev = torch.device(device)
    out = {
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "scaling_cpu_gloo": scaling_cpu(batch=8, steps=3 if quick else 10),
    }
    if dev.type == "cuda":
        steps = 3 if quick else 5
        for tokens in (10_240, 26_624):  # the step below; 2 clips of 13x32x32
            out[f"head_{tokens}"] = head_figures(tokens, 1024, 64000, steps, dev)
        for preset in ("0.6B", "1.7B"):
            out[f"step_{preset}"] = step_figures(preset, 2, (5, 32, 32), steps, dev)
        out["step_0.6B_long"] = step_figures(
            "0.6B", 2, (13, 32, 32), steps, dev
        )  # 26,690 tokens a step
    else:
        out["head_4096"] = head_figures(
            4096, 1024, 64000, 2 if quick else 3, dev
        )  # the 0.6B head's shape
        out["step_tiny"] = step_figures(
            "tiny",
            4,
            (3, 8, 8),
            3 if quick else 10,
            dev,
            text_vocab_size=256,
            visual_vocab_size=512,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = run(quick=args.quick, device=args.device)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        from ursa.io import atomic_write_bytes

        atomic_write_bytes(args.json, (text + "\n").encode())


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
