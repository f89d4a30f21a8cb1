"""The training step with `train.compile` (each transformer block compiled, ursa.parallel.compile_blocks)
at the 0.6B preset on CUDA, beside the eager figures of the `train` suite: its own suite, so the
compilation's minutes and any failure of it never cost the eager figures. CPU: the tiny preset.

Standalone: python -m benchmarks.perf --suite train_compile --device cuda
"""

from __future__ import annotations

import torch

from benchmarks.perf.train_bench import step_figures


def run(quick: bool = True, device: str = "cpu") -> dict:
    dev = torch.device(device)
    steps = 3 if quick else 5
    if dev.type == "cuda":
        return {"step_0.6B_compile": step_figures("0.6B", 2, (5, 32, 32), steps, dev, compile=True)}
    return {
        "step_tiny_compile": step_figures(
            "tiny",
            4,
            (3, 8, 8),
            steps,
            dev,
            compile=True,
            text_vocab_size=256,
            visual_vocab_size=512,
        )
    }
