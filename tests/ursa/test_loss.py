"""linear_cross_entropy equals the plain head + float32 cross-entropy, value and gradients, for
every chunking; it never holds more than one chunk of logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ursa.loss import linear_cross_entropy

RTOL = 1e-5  # float32: only the summation order over chunks differs (measured ~2e-7)


def problem(n: int = 300, d: int = 16, k: int = 1000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g, requires_grad=True)
    weight = (0.3 * torch.randn(k, d, generator=g)).requires_grad_()
    return (
        hidden,
        weight,
        torch.randint(k, (n,), generator=g),
        (torch.rand(n, generator=g) < 0.7).float(),
    )


def plain(hidden, weight, targets, weights):
    ce = F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="none")
    return ce.sum() if weights is None else (ce * weights).sum()


def grads(loss_fn, hidden, weight, *args):
    hidden.grad = weight.grad = None
    loss = loss_fn(hidden, weight, *args)
    (3.0 * loss).backward()  # a non-unit incoming gradient: backward must scale the stored ones
    return loss.detach(), hidden.grad.clone(), weight.grad.clone()


def close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> bool:
    return bool((a - b).abs().max() <= rtol * b.abs().max())


@pytest.mark.parametrize(
    "rows", [1, 7, 64, 300, 10_000]
)  # one row, uneven chunks, exact, one chunk, more than N
@pytest.mark.parametrize("weighted", [True, False])
def test_equals_the_plain_head_value_and_gradients(rows, weighted):
    hidden, weight, targets, weights = problem()
    weights = weights if weighted else None
    ref = grads(plain, hidden, weight, targets, weights)
    out = grads(
        lambda h, w, y, s: linear_cross_entropy(h, w, y, s, chunk_elements=rows * w.shape[0]),
        hidden,
        weight,
        targets,
        weights,
    )
    for got, want in zip(out, ref):
        assert close(got, want, RTOL), (got - want).abs().max()


def test_bf16_autocast_matches_the_plain_head_under_autocast():
    hidden, weight, targets, weights = problem(k=4000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = grads(plain, hidden, weight, targets, weights)
        out = grads(
            lambda h, w, y, s: linear_cross_entropy(h, w, y, s, chunk_elements=50 * w.shape[0]),
            hidden,
            weight,
            targets,
            weights,
        )
    assert out[1].dtype == hidden.dtype and out[2].dtype == weight.dtype
    # both compute the matmuls in bf16 (8 bits of mantissa); the loss itself is float32 in both
    assert close(out[0], ref[0], 1e-3)
    for got, want in zip(out[1:], ref[1:]):
        assert close(got, want, 2e-2), (got - want).abs().max()


def test_no_grad_returns_the_value_and_keeps_no_graph():
    hidden, weight, targets, weights = problem()
    with torch.no_grad():
        out = linear_cross_entropy(hidden, weight, targets, weights)
    assert not out.requires_grad
    assert close(out, plain(hidden, weight, targets, weights).detach(), RTOL)


def test_peak_memory_is_one_chunk_not_the_logits():
    """Traced with the CPU allocator's profiler: the largest live tensor is a chunk, never N x K."""
    hidden, weight, targets, weights = problem(n=2048, k=8000)
    rows = 64
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        linear_cross_entropy(
            hidden, weight, targets, weights, chunk_elements=rows * 8000
        ).backward()
    biggest = max(e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0)
    logits_bytes = 2048 * 8000 * 4
    assert biggest < logits_bytes / 8, (biggest, logits_bytes)
