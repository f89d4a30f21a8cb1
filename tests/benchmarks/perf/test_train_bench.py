"""The training benchmark's MFU arithmetic: the peak of each H100 / H200 variant from its name."""

from __future__ import annotations

import pytest

from benchmarks.perf.train_bench import peak_bf16_flops


@pytest.mark.parametrize(
    "name, tflops",
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H100 NVL", 835),
        ("NVIDIA H200", 989),
        ("NVIDIA H200 NVL", 835),
        ("NVIDIA GH200 480GB", 989),
        ("NVIDIA A100-SXM4-80GB", None),
    ],
)
def test_peak_bf16_flops_per_variant(name: str, tflops: int | None) -> None:
    """Dense bf16 peaks from NVIDIA's data sheets (before: 989 for any H100: a PCIe card's MFU read 24% low)."""
    got = peak_bf16_flops(name)
    assert (got if got is None else got / 1e12) == tflops
