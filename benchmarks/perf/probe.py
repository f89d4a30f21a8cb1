"""The GPU probe: where a training step's time goes, so an MFU miss can be explained.

For each variant of ursa.train's real step it records the step time and MFU (model FLOPs as
benchmarks/perf/train_bench.py counts them, split into backbone, head and attention), the SDPA
backend(s) the attention ran on (read from the profiler's op names: flash, efficient, cudnn, math),
and a torch.profiler breakdown of the step by category: GEMM, attention, elementwise (everything
else that computes: norms, rotary, casts, copies, the loss's softmax), optimizer (clipping, AdamW,
EMA), communication, host sync (item / synchronize / nonzero: time the host waits), other.

Variants (CUDA: 0.6B bf16, batch 2, the 13-frame (13, 32, 32) clip; eager also at the benchmark's
5-frame (5, 32, 32) clip): `eager` (every caption token real: no attention mask), `compiled`
(`train.compile`), `padded_mask` (captions right-padded to the longest, one masked call: what real
captions cost), `padded_split` (`train.padded_captions: split`). CPU: the tiny preset, `compiled`
skipped with the reason (inductor's CPU build takes minutes on a CI machine), MFU null (no peak).

The JSON is rewritten after every part, so a run stopped by its time limit keeps what it measured.
Standalone: python -m benchmarks.perf.probe --device cuda --out DIR  (benchmarks/perf/run_gpu.sh)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from benchmarks.perf.train_bench import TEXT_LEN, _data, model_flops, peak_bf16_flops
from ursa.io import atomic_write_bytes
from ursa.model import URSAConfig, URSAModel
from ursa.path_config import build_path
from ursa.tokenizers.fsq import fsq_codebook
from ursa.train import TokenDataset, train
from ursa.train_config import TrainConfig

CATEGORIES = (
    "gemm",
    "attention",
    "elementwise",
    "optimizer",
    "communication",
    "host_sync",
    "other",
)
# (category, pattern over a lower-cased op or kernel name), first match wins
_RULES = [
    ("host_sync", r"_local_scalar_dense|aten::item|synchronize|aten::nonzero|cudamemcpy(async)?$"),
    ("communication", r"nccl|gloo|all_?reduce|all_?gather|reduce_?scatter|c10d"),
    ("attention", r"scaled_dot_product|flash|fmha|attention|cudnn.*sdpa"),
    ("optimizer", r"adam|_foreach|multi_tensor|clip_grad|optimizer"),
    (
        "gemm",
        r"aten::(mm|addmm|bmm|baddbmm|matmul|linear)$|gemm|cutlass|xmma|nvjet|cublas|sm\d+_.*(mma|gmma)",
    ),
    (
        "other",
        r"^profilerstep|^autograd::|^cuda(launch|eventrecord|streamwait|getdevice|func)|^aten::(empty|view|"
        r"reshape|as_strided|slice|select|unsqueeze|squeeze|permute|transpose|t|expand|detach|alias|"
        r"resolve_conj|resolve_neg|lift_fresh|_unsafe_view|result_type)$",
    ),
]
SDPA_BACKENDS = {  # op name fragment -> backend
    "_scaled_dot_product_flash_attention_for_cpu": "flash_cpu",
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_attention_math": "math",
    "_scaled_dot_product_fused_attention_overrideable": "overrideable",
}


def category(name: str) -> str:
    """The category of a profiler event (an aten op on the CPU, a kernel on the GPU)."""
    low = name.lower()
    return next((cat for cat, pattern in _RULES if re.search(pattern, low)), "elementwise")


def sdpa_backends(names: list[str]) -> dict[str, list[str]]:
    """{SDPA backend: the op names among `names` that show it} (forward and backward ops alike; the
    most specific fragment of a name decides)."""
    found: dict[str, list[str]] = {}
    for name in names:
        hits = [
            (len(fragment), backend)
            for fragment, backend in SDPA_BACKENDS.items()
            if fragment in name
        ]
        if hits:
            found.setdefault(max(hits)[1], []).append(name[:90])
    return found


def breakdown(prof: profile, device: torch.device, steps: int) -> dict:
    """Milliseconds per step by category: the GPU's kernel time on CUDA (and the host's wait in
    synchronising calls), self CPU time of every op on the CPU; plus the top ops."""
    per: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
    top: list[tuple[float, str, str]] = []
    names = []
    for event in prof.key_averages():
        names.append(event.key)
        if device.type == "cuda":
            us = event.self_device_time_total if event.device_type.name == "CUDA" else 0.0
            if category(event.key) == "host_sync":
                us = max(us, event.self_cpu_time_total)  # the host's wait, not a kernel
        else:
            us = event.self_cpu_time_total
        if us <= 0:
            continue
        cat = category(event.key)
        per[cat] += us / 1e3 / steps
        top.append((us / 1e3 / steps, cat, event.key[:90]))
    total = sum(per.values())
    return {
        "ms_per_step": {k: round(v, 4) for k, v in per.items()},
        "total_ms": round(total, 4),
        "share": {k: round(v / total, 4) if total else None for k, v in per.items()},
        "top_ops": [
            {"ms": round(ms, 4), "category": cat, "name": name}
            for ms, cat, name in sorted(top)[::-1][:12]
        ],
        "sdpa_backends": sdpa_backends(names),
    }


def flop_split(config: URSAConfig, batch: int, latent: tuple[int, int, int]) -> dict:
    """Model TFLOP of one step: total, and its backbone / head / attention parts (train_bench's formula)."""
    visual = math.prod(latent)
    seq = TEXT_LEN + 1 + visual
    total = model_flops(config, batch, latent)
    attention = batch * 12 * config.num_layers * config.num_heads * config.head_dim * seq * seq
    head = batch * 6 * config.hidden_size * config.visual_vocab_size * visual
    return {
        "total": total / 1e12,
        "backbone": (total - attention - head) / 1e12,
        "head": head / 1e12,
        "attention": attention / 1e12,
    }


def padded(data: TokenDataset, seed: int = 0) -> TokenDataset:
    """`data` with its captions right-padded: real lengths drawn in [1, L] (what a batch of real
    captions padded to its longest looks like; the first is full length)."""
    n, length = data.text_mask.shape
    lengths = torch.randint(1, length + 1, (n,), generator=torch.Generator().manual_seed(seed))
    lengths[0] = length
    return TokenDataset(data.text_ids, torch.arange(length) < lengths[:, None], data.visual_ids)


def variant(
    preset: str,
    batch: int,
    latent: tuple[int, int, int],
    device: torch.device,
    *,
    compile: bool = False,
    captions: str = "real",
    warm: int = 2,
    timed: int = 3,
    active: int = 2,
    **overrides,
) -> dict:
    """One variant's step time, MFU, FLOP split, SDPA backends and profiler breakdown, from the real
    train() loop: `warm` steps, `timed` steps timed without the profiler, `active` steps profiled."""
    config = URSAConfig.preset(preset, **overrides)
    data = _data(config, batch, latent)
    if captions != "real":
        data = padded(data)
    k = config.visual_vocab_size
    embeddings = (
        fsq_codebook()
        if k == 64000
        else torch.randn(k, 8, generator=torch.Generator().manual_seed(0))
    )
    path = build_path("metric", vocab_size=k, embeddings=embeddings.to(device))
    with torch.device(device):
        model = URSAModel(config, seed=0)
    stamps: list[float] = []
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    steps = warm + timed + 1 + active
    with profile(
        activities=activities, schedule=schedule(wait=warm + timed, warmup=1, active=active)
    ) as prof:

        def on_step(
            step: int, loss: float
        ) -> None:  # log_every 1: each step's loss read back (a sync)
            stamps.append(time.perf_counter())
            prof.step()

        with tempfile.TemporaryDirectory() as out:
            train(
                model,
                path,
                data,
                TrainConfig(
                    steps=steps + 1,
                    batch_size=batch,
                    device=str(device),
                    bf16=device.type == "cuda",
                    checkpoint_every=10**9,
                    warmup_steps=1,
                    corruption="clip",
                    compile=compile,
                    log_every=1,
                    padded_captions="split" if captions == "split" else "mask",
                ),
                out,
                progress=False,
                on_step=on_step,
                stop_after=steps,
            )
    step_s = (stamps[warm + timed - 1] - stamps[warm - 1]) / timed
    flops = flop_split(config, batch, latent)
    peak = peak_bf16_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    result = {
        "preset": preset,
        "batch": batch,
        "latent": list(latent),
        "compile": compile,
        "captions": captions,
        "step_ms": 1e3 * step_s,
        "tokens_per_s": batch * (TEXT_LEN + 1 + math.prod(latent)) / step_s,
        "model_tflop_per_step": flops,
        "achieved_tflops": flops["total"] / step_s,
        "peak_tflops": peak / 1e12 if peak else None,
        "mfu": flops["total"] * 1e12 / step_s / peak if peak else None,
        "profile": breakdown(prof, device, active),
    }
    if peak is None:
        result["mfu_skipped"] = "no GPU peak: MFU is measured on an H100/H200-class GPU only"
    if device.type == "cuda":
        result["max_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        del model
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return result


def parts(device: torch.device) -> list[tuple[str, Callable[[], dict] | None, str]]:
    """(name, the part, why it is skipped when the part is None), in the order they run."""
    if device.type == "cuda":
        long, short = (13, 32, 32), (5, 32, 32)
        return [
            ("eager", lambda: variant("0.6B", 2, long, device), ""),
            ("padded_mask", lambda: variant("0.6B", 2, long, device, captions="mask"), ""),
            ("padded_split", lambda: variant("0.6B", 2, long, device, captions="split"), ""),
            ("eager_5frame", lambda: variant("0.6B", 2, short, device), ""),
            ("compiled", lambda: variant("0.6B", 2, long, device, compile=True, warm=3), ""),
        ]
    tiny = dict(text_vocab_size=256, visual_vocab_size=512, warm=1, timed=1, active=1)
    return [
        ("eager", lambda: variant("tiny", 4, (3, 8, 8), device, **tiny), ""),
        ("padded_mask", lambda: variant("tiny", 4, (3, 8, 8), device, captions="mask", **tiny), ""),
        (
            "padded_split",
            lambda: variant("tiny", 4, (3, 8, 8), device, captions="split", **tiny),
            "",
        ),
        ("eager_5frame", None, "GPU only (the 0.6B preset at the benchmark's 5-frame clip)"),
        (
            "compiled",
            None,
            "GPU only: inductor's CPU build of the blocks takes minutes on a CI machine",
        ),
    ]


def environment(device: torch.device) -> dict:
    info = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        info.update(
            gpu=torch.cuda.get_device_name(device),
            capability=list(torch.cuda.get_device_capability(device)),
            peak_bf16_tflops=(peak_bf16_flops(torch.cuda.get_device_name(device)) or 0) / 1e12
            or None,
            flash_sdp=torch.backends.cuda.flash_sdp_enabled(),
            mem_efficient_sdp=torch.backends.cuda.mem_efficient_sdp_enabled(),
            cudnn_sdp=torch.backends.cuda.cudnn_sdp_enabled(),
        )
    return info


def run(device: str, out: Path) -> dict:
    """Every part in turn, probe.json rewritten after each (a failing part is recorded, the rest run)."""
    dev = torch.device(device)
    results: dict = {"environment": environment(dev), "parts": {}}

    def write() -> None:
        atomic_write_bytes(out / "probe.json", (json.dumps(results, indent=2) + "\n").encode())

    out.mkdir(parents=True, exist_ok=True)
    write()
    for name, part, reason in parts(dev):
        start = time.perf_counter()
        if part is None:
            results["parts"][name] = {"skipped": reason}
        else:
            try:
                results["parts"][name] = part()
            except Exception as exc:  # noqa: BLE001 - one failing part must not lose the others
                results["parts"][name] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()[-3000:],
                }
        results["parts"][name]["seconds"] = round(time.perf_counter() - start, 1)
        write()
        print(
            f"[probe] {name}: {results['parts'][name].get('mfu', results['parts'][name].get('skipped', ''))} "
            f"({results['parts'][name]['seconds']} s)",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf.probe", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda when visible)")
    parser.add_argument("--out", type=Path, required=True, help="folder for probe.json")
    args = parser.parse_args(argv)
    device = (
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch on this machine")
    results = run(device, args.out)
    return 1 if any("error" in p for p in results["parts"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
