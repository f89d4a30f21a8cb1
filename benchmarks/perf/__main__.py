"""CLI: run the perf suites, print each target met / missed, and record the figures.

    python -m benchmarks.perf [--suite NAME ...] [--device cuda] [--quick] [--out DIR]

Figures go to DIR/perf.json and DIR/perf.md (default: runs/perf/<device>-<date>/, never the
committed figures; pass --out reports/perf/... to update those on purpose). The JSON is written
after every suite, so a run stopped part-way keeps what it measured; a suite that fails is
recorded with its error and the others still run (exit 1).
"""

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

from benchmarks.perf.targets import flatten, table
from ursa.io import atomic_write_bytes

# suite name -> module with `run(quick: bool, device: str) -> dict`
SUITES = {
    "paths": "benchmarks.perf.paths_bench",
    "sampler": "benchmarks.perf.sampler_bench",
    "harness": "benchmarks.perf.harness_bench",
    "train": "benchmarks.perf.train_bench",
    "train_compile": "benchmarks.perf.train_compile_bench",
    "release_sample": "benchmarks.perf.release_sample_bench",
    "data": "benchmarks.perf.data_bench",
    "seeds": "benchmarks.perf.seeds_bench",
    "cpu_isa": "benchmarks.perf.cpu_isa_bench",
}


def machine_info(device: str) -> dict:
    """Where and when the figures were taken: they mean nothing without it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
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
    """The targets table, then one table per suite: measurement | value."""
    lines = ["# Perf figures", ""]
    lines += [f"- {k}: {v}" for k, v in results["machine"].items()]
    lines += ["", "## Targets", "", table(results).rstrip()]
    for suite, figures in results["suites"].items():
        lines += ["", f"## {suite}", "", "| measurement | value |", "|---|---|"]
        for key, value in flatten(figures):
            lines.append(
                f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
            )
    return "\n".join(lines) + "\n"


def _write(out: Path, results: dict) -> None:
    atomic_write_bytes(out / "perf.json", (json.dumps(results, indent=2) + "\n").encode())
    atomic_write_bytes(out / "perf.md", to_markdown(results).encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="where to measure (default: cpu)"
    )
    parser.add_argument(
        "--suite", action="append", choices=sorted(SUITES), help="run only these (repeatable)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for perf.json and perf.md (default: runs/perf/<device>-<date>/)",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch on this machine")
    out = args.out or Path("runs") / "perf" / f"{args.device}-{time.strftime('%Y%m%d-%H%M%S')}"

    results = {"machine": machine_info(args.device), "quick": args.quick, "suites": {}}
    failed = []
    for name in args.suite or list(SUITES):
        print(f"[perf] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            results["suites"][name] = importlib.import_module(SUITES[name]).run(
                quick=args.quick, device=args.device
            )
        except Exception as exc:  # noqa: BLE001 - one failing suite must not lose the others' figures
            results["suites"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
        print(f"[perf] {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        _write(out, results)
    _write(out, results)
    print(table(results), end="")
    for name in failed:
        print(f"[perf] {name} failed: {results['suites'][name]['error']}", file=sys.stderr)
    print(f"figures: {out / 'perf.json'}, {out / 'perf.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
