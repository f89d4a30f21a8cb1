"""CLI: run the perf suites and record the figures under reports/perf/."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from ursa.io import atomic_write_bytes

# suite name -> module with `run(quick: bool, device: str) -> dict`
SUITES = {
    "paths": "benchmarks.perf.paths_bench",
    "sampler": "benchmarks.perf.sampler_bench",
    "harness": "benchmarks.perf.harness_bench",
}


def machine_info(device: str) -> dict:
    """Where and when the figures were taken: they mean nothing without it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": commit,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def to_markdown(results: dict) -> str:
    """One table per suite: metric | value (ratios and targets are named in the keys)."""
    lines = ["# Perf figures", ""]
    lines += [f"- {k}: {v}" for k, v in results["machine"].items()]
    for suite, figures in results["suites"].items():
        lines += ["", f"## {suite}", "", "| measurement | value |", "|---|---|"]
        for key, value in _flatten(figures):
            lines.append(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")
    return "\n".join(lines) + "\n"


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        out += _flatten(v, key + ".") if isinstance(v, dict) else [(key, v)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="run only these (repeatable)")
    parser.add_argument("--json", type=Path, default=Path("reports/perf/perf.json"), help="where to write the JSON")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch on this machine")

    results = {"machine": machine_info(args.device), "quick": args.quick, "suites": {}}
    for name in args.suite or list(SUITES):
        module = importlib.import_module(SUITES[name])
        print(f"[perf] {name} ...", file=sys.stderr, flush=True)
        results["suites"][name] = module.run(quick=args.quick, device=args.device)
    atomic_write_bytes(args.json, (json.dumps(results, indent=2) + "\n").encode())
    atomic_write_bytes(args.json.with_suffix(".md"), to_markdown(results).encode())
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
