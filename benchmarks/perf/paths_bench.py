"""Metric-path corruption / velocity / Euler step: chunked `MetricPath` against a naive reference
that materialises the full N x K distance and softmax tensors (the authors' approach), at
K = 64000 (Cosmos FSQ levels (8,8,8,5,5,5)), side by side in one process on the same inputs.

Peak memory is the peak *extra* memory of one call above what was live before it:
- CPU: the kernel's resident-set high-water mark (VmHWM in /proc/self/status), reset before each
  call by writing "5" to /proc/self/clear_refs. torch's CPU allocator returns large blocks to the
  OS on free (glibc mmap), so the high-water mark sees every N x K temporary; tracemalloc would not.
- CUDA: torch.cuda.max_memory_allocated after torch.cuda.reset_peak_memory_stats().
Times are the median of `reps` calls. Ratios: time = ours / naive (lower is better),
memory = naive / ours (higher is better).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ursa.paths import MetricPath
from ursa.schedule import beta, beta_dot
from ursa.tokenizers.fsq import fsq_codebook

LEVELS = (8, 8, 8, 5, 5, 5)
C, ALPHA = 3.0, 0.9


def fsq_grid() -> torch.Tensor:
    """Cosmos-sized FSQ grid codebook float32 (64000, 6), its all-zero code included."""
    return fsq_codebook(LEVELS).to(torch.float32).contiguous()


# -- the naive reference: everything (N, K) at once ---------------------------------------------
def naive_probs(
    e: torch.Tensor, x1: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(d, p): float32 (N, K) distances to x1 and p_t(. | x1), both materialised."""
    d = 2 - 2 * (e[x1] @ e.T)
    p = torch.softmax(-beta(t, C, ALPHA).float()[:, None] * d, dim=-1)
    return d, p


def naive_sample(
    e: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    _, p = naive_probs(e, x1, t)
    return torch.multinomial(p, 1, generator=g).squeeze(1)


def naive_velocity(
    e: torch.Tensor, xt: torch.Tensor, x1: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    d, p = naive_probs(e, x1, t)
    d0 = d.gather(1, xt[:, None])
    u = beta_dot(t, C, ALPHA).float()[:, None] * p * (d0 - d).clamp(min=0)
    return u.scatter_(1, xt[:, None], 0.0)


def naive_step(
    e: torch.Tensor,
    xt: torch.Tensor,
    x1: torch.Tensor,
    t: torch.Tensor,
    h: float,
    g: torch.Generator,
) -> torch.Tensor:
    u = naive_velocity(e, xt, x1, t)
    r = u.sum(1)
    jump = torch.rand(r.shape, generator=g, device=r.device) < -torch.expm1(-h * r)
    u.scatter_(1, xt[:, None], (r == 0).float()[:, None])  # rows with no rate: a valid dummy row
    return torch.where(jump, torch.multinomial(u, 1, generator=g).squeeze(1), xt)


# -- measurement --------------------------------------------------------------------------------
def _kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def measure(fn: Callable[[], object], device: str, reps: int) -> tuple[float, float]:
    """(median seconds, peak extra MiB) of fn()."""
    times, peaks = [], []
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            base = _kib("VmRSS") * 1024
        start = time.perf_counter()
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() if device == "cuda" else _kib("VmHWM") * 1024
        peaks.append((peak - base) / 2**20)
        del out
    return statistics.median(times), max(peaks)


def run(quick: bool, device: str, chunk_size: int = 1024) -> dict:
    """Side-by-side figures per token count; see the module docstring for the method."""
    reps = 2
    # CPU full: the naive step's peak at 6144 tokens is ~7.5 GB (5 float32 N x K tensors)
    token_counts = (
        [512, 1024] if quick else ([2048, 6144] if device == "cpu" else [2048, 8192, 33_280])
    )
    emb = fsq_grid().to(device)
    k = emb.shape[0]
    path = MetricPath(emb, c=C, alpha=ALPHA, chunk_size=chunk_size)
    e = path.embeddings  # the same L2-normalised rows for both

    # the two implement the same velocity (checked on a small batch)
    g = torch.Generator(device=device).manual_seed(0)
    x1 = torch.randint(k, (256,), generator=g, device=device)
    t = torch.full((256,), 0.5, dtype=torch.float64, device=device)
    xt = path.sample(x1, t, g)
    ours_u, naive_u = path.velocity(xt, x1, t), naive_velocity(e, xt, x1, t)
    rel_err = float((ours_u - naive_u).abs().max() / naive_u.abs().max())

    results: dict = {
        "K": k,
        "chunk_size": chunk_size,
        "reps": reps,
        "device": device,
        "memory_method": "CUDA max_memory_allocated"
        if device == "cuda"
        else "VmHWM delta after clear_refs",
        "velocity_max_rel_diff_vs_naive": rel_err,
        "chunk_bound_mib": 2 * chunk_size * k * 4 / 2**20,  # 2 float32 (chunk, K) working buffers
    }
    for n in token_counts:
        x1 = torch.randint(k, (n,), generator=g, device=device)
        t = torch.rand(n, generator=g, dtype=torch.float64, device=device) * 0.9 + 0.05
        xt = path.sample(x1, t, g)
        row: dict = {}
        cases = {
            "sample": (lambda: path.sample(x1, t, g), lambda: naive_sample(e, x1, t, g)),
            "step": (
                lambda: path.step(xt, x1, t, 0.04, g),
                lambda: naive_step(e, xt, x1, t, 0.04, g),
            ),
            "velocity": (lambda: path.velocity(xt, x1, t), lambda: naive_velocity(e, xt, x1, t)),
        }
        for name, (ours, naive) in cases.items():
            ours_s, ours_mib = measure(ours, device, reps)
            naive_s, naive_mib = measure(naive, device, reps)
            row[name] = {
                "ours_s": ours_s,
                "naive_s": naive_s,
                "time_ratio": ours_s / naive_s,
                "ours_peak_mib": ours_mib,
                "naive_peak_mib": naive_mib,
                "memory_ratio": naive_mib / max(ours_mib, 1e-9),
            }
        results[f"tokens_{n}"] = row
    # Naive peak grows as N x K; ours stays at the chunk buffers, plus velocity's own (N, K)
    # output. Project the largest measured run to one 49x320x512 video (33,280 tokens).
    n_last = token_counts[-1]
    if n_last < 33_280:
        projected = {}
        for name, fig in results[f"tokens_{n_last}"].items():
            # velocity's float32 (N, K) output grows with N; the chunk buffers do not
            extra = (33_280 - n_last) * k * 4 / 2**20 if name == "velocity" else 0.0
            naive, ours = fig["naive_peak_mib"] * 33_280 / n_last, fig["ours_peak_mib"] + extra
            projected[name] = {
                "naive_peak_mib": naive,
                "ours_peak_mib": ours,
                "memory_ratio": naive / ours,
            }
        results["projected_33280"] = projected
    return results
