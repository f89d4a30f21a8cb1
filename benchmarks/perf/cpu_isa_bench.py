"""The cost of the CPU kernel pins (harness/cpu.py): train step time per kernel level.

Each level trains the path_shape default profile's model (small preset cut to 2 layers, MLP 256,
K = 65, a (4, 4, 4) latent, batch 16, metric path, one thread) in a fresh process, since torch
reads ATEN_CPU_CAPABILITY once at import: `native` (no pins: the host's best level), `pinned`
(harness.cpu.PINS, what `python -m harness` runs) and `default` (ATen's scalar kernels). The
levels take turns over `rounds` rounds (a load that comes and goes hits each alike); the figure
is the median CPU time per step (process time: one thread, so other processes on the host
count less than in wall time), and `ratio_pinned_over_native` the price of the pins. Each level
also reports a digest of its losses: pinned equals native on an AVX2-only host, not here.

Standalone: python -m benchmarks.perf.cpu_isa_bench [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from harness.cpu import PINS, host_flags, pinnable

LEVELS = {"native": {}, "pinned": PINS, "default": {"ATEN_CPU_CAPABILITY": "default"}}

_WORKER = """
import hashlib, json, sys, tempfile, time
import torch
torch.set_num_threads(1)
from ursa.model import URSAConfig, URSAModel
from ursa.path_config import build_path
from ursa.train import TokenDataset, train
from ursa.train_config import TrainConfig
steps = int(sys.argv[1])
config = URSAConfig.preset("small", text_vocab_size=256, visual_vocab_size=65, num_layers=2,
                           intermediate_size=256)
g = torch.Generator().manual_seed(0)
data = TokenDataset(torch.randint(0, 256, (256, 32), generator=g),
                    torch.ones(256, 32, dtype=torch.bool),
                    torch.randint(0, 65, (256, 4, 4, 4), generator=g))
path = build_path("metric", vocab_size=65, embeddings=torch.randn(65, 3, generator=g))
stamps, losses = [], []
def on_step(step, loss):
    stamps.append(time.process_time())
    losses.append(loss)
with tempfile.TemporaryDirectory() as out:
    config_train = TrainConfig(steps=steps + 3, batch_size=16, lr=0.003, checkpoint_every=10**9,
                               warmup_steps=1)
    train(URSAModel(config, seed=0), path, data, config_train, out, progress=False, on_step=on_step,
          stop_after=steps + 2)
print(json.dumps({"capability": str(torch.backends.cpu.get_cpu_capability()),
                  "s_per_step": (stamps[-1] - stamps[1]) / steps,
                  "digest": hashlib.sha256(repr(losses).encode()).hexdigest()[:16]}))
"""


def _once(level: str, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PINS} | LEVELS[level]
    out = subprocess.run(
        [sys.executable, "-c", _WORKER, str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False, device: str = "cpu") -> dict:
    """{level: {capability, s_per_step (median), digest}, ratio_pinned_over_native, ...}."""
    if device != "cpu":
        return {"skipped": "CPU kernels only (--device cpu)"}
    if not pinnable(host_flags()):
        return {"skipped": "this host cannot run the pins (x86-64 with AVX2 and FMA)"}
    steps, rounds = (10, 1) if quick else (60, 3)
    times: dict[str, list[float]] = {level: [] for level in LEVELS}
    seen: dict[str, dict] = {}
    for _ in range(rounds):
        for level in LEVELS:
            seen[level] = _once(level, steps)
            times[level].append(seen[level]["s_per_step"])
    out: dict = {
        level: {
            "capability": seen[level]["capability"],
            "s_per_step": statistics.median(times[level]),
            "digest": seen[level]["digest"],
        }
        for level in LEVELS
    }
    out["ratio_pinned_over_native"] = out["pinned"]["s_per_step"] / out["native"]["s_per_step"]
    out["ratio_default_over_native"] = out["default"]["s_per_step"] / out["native"]["s_per_step"]
    out["steps"], out["rounds"] = steps, rounds
    out["pins"] = ", ".join(f"{k}={v}" for k, v in PINS.items())
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=2))
