"""benchmarks/perf/run_gpu.sh runs end to end on the CPU (tiny preset): every part recorded,
the GPU-only parts skipped with their reason, a profiler breakdown by category and the SDPA
backend of each CPU variant; the categories of known op and kernel names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.perf.probe import CATEGORIES, category, sdpa_backends

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "name, want",
    [
        ("aten::mm", "gemm"),
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "gemm"),
        ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTN", "gemm"),
        ("aten::_scaled_dot_product_flash_attention", "attention"),
        (
            "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4>>",
            "attention",
        ),
        ("aten::_fused_adamw_", "optimizer"),
        ("aten::_foreach_lerp_", "optimizer"),
        ("aten::item", "host_sync"),
        ("cudaStreamSynchronize", "host_sync"),
        ("ncclDevKernel_AllReduce_Sum_f32_RING_LL", "communication"),
        ("aten::mul", "elementwise"),
        ("void at::native::vectorized_elementwise_kernel<4, ...>", "elementwise"),
        ("aten::view", "other"),
        ("ProfilerStep#3", "other"),
    ],
)
def test_categories_of_op_and_kernel_names(name: str, want: str) -> None:
    assert category(name) == want


def test_sdpa_backend_from_op_names() -> None:
    names = [
        "aten::_scaled_dot_product_flash_attention_for_cpu",
        "aten::_scaled_dot_product_efficient_attention",
        "aten::mm",
    ]
    assert list(sdpa_backends(names)) == ["flash_cpu", "efficient"]


def test_run_gpu_sh_runs_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "DEVICE": "cpu",
        "PYTHON": sys.executable,
        "LIMIT_S": "600",
    }
    proc = subprocess.run(
        ["bash", "benchmarks/perf/run_gpu.sh"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=700,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    parts = json.loads((tmp_path / "probe.json").read_text())["parts"]
    assert list(parts) == ["eager", "padded_mask", "padded_split", "eager_5frame", "compiled"]
    assert (
        "GPU only" in parts["compiled"]["skipped"]
        and "GPU only" in parts["eager_5frame"]["skipped"]
    )
    for name in ("eager", "padded_mask", "padded_split"):
        p = parts[name]
        assert p["mfu"] is None and "GPU" in p["mfu_skipped"]
        assert set(p["profile"]["ms_per_step"]) == set(CATEGORIES)
        assert p["profile"]["ms_per_step"]["gemm"] > 0 and p["step_ms"] > 0
        assert p["profile"]["sdpa_backends"], p["profile"]  # the attention ran on some SDPA backend
        split = p["model_tflop_per_step"]
        assert split["total"] == pytest.approx(
            split["backbone"] + split["head"] + split["attention"]
        )
