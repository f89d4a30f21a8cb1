"""The paths benchmark's naive reference computes the same math, and its memory probe sees
torch allocations (fast: small K; the K = 64000 run is `python -m benchmarks.perf`)."""

from __future__ import annotations

import torch

from benchmarks.perf.paths_bench import fsq_grid, measure, naive_step, naive_velocity
from ursa.paths import MetricPath


def test_naive_reference_matches_metric_path() -> None:
    g = torch.Generator().manual_seed(0)
    path = MetricPath(torch.randn(300, 6, generator=g), chunk_size=7)
    x1 = torch.randint(300, (200,), generator=g)
    t = torch.rand(200, generator=g, dtype=torch.float64) * 0.9 + 0.05
    xt = path.sample(x1, t, g)
    # same velocity up to float32 rounding of two different reduction orders
    torch.testing.assert_close(
        naive_velocity(path.embeddings, xt, x1, t), path.velocity(xt, x1, t), rtol=1e-4, atol=1e-6
    )
    # the naive step moves only tokens with a positive rate (x_t != x1)
    moved = naive_step(path.embeddings, xt, x1, t, 0.05, g) != xt
    assert not bool((moved & (xt == x1)).any())


def test_measure_sees_torch_allocations() -> None:
    seconds, mib = measure(lambda: torch.ones(64, 2**20).sum(), "cpu", reps=1)  # 256 MiB temporary
    assert seconds > 0 and 200 < mib < 400, mib


def test_fsq_grid_is_cosmos_sized_and_usable_by_the_metric_path() -> None:
    codes = fsq_grid()
    assert codes.shape == (64000, 6) and int((codes.norm(dim=1) == 0).sum()) == 1
    MetricPath(codes)  # the all-zero code is accepted (F.normalize semantics)
