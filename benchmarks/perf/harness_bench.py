"""Harness overheads: expanding + validating a 1,000-run grid, a no-op rerun of a completed
spec, and rendering a 100-run report.

Every figure is user-facing wall time, measured in this process (grid, report) or as the CLI
subprocess a user would type (rerun), so imports count where a user pays for them.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from harness.report import render_report
from harness.runner import plan
from harness.specfile import parse_spec
from harness.store import load_results, read_result, run_dir, write_manifest, write_result

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "ablations" / "path_shape.yaml"


def _cli(*args: str | Path) -> float:
    """Wall seconds of `python -m harness ...` from the repo root (raises if it fails)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def grid_1000(runs_root: Path) -> dict:
    """path_shape's base under a 10 x 10 x 10 grid (c, alpha, seed) = 1,000 runs: parse, validate,
    expand and give every run its id (data fingerprints are cached after the first)."""
    data = yaml.safe_load(SPEC.read_text())
    data["grid"] = {
        "path.kind": ["metric"],
        "path.c": [0.5 * i for i in range(1, 11)],
        "path.alpha": [0.2 * i for i in range(1, 11)],
    }
    data["zip"] = []  # the grid replaces the spec's own axes
    data["seeds"] = list(range(10))
    plan(
        parse_spec(copy.deepcopy(data)), "default", runs_root, references=False
    )  # warm: fit the tokenizer once
    start = time.perf_counter()
    runs = plan(parse_spec(data), "default", runs_root, references=False)
    seconds = time.perf_counter() - start
    assert len(runs) == 1000 and len({r.run_id for r in runs}) == 1000
    return {"runs": len(runs), "seconds": seconds, "target_s": 2.0}


def noop_rerun(runs_root: Path) -> dict:
    """Run the smoke profile once, then time the rerun that finds everything done."""
    common = (
        "--profile",
        "smoke",
        "--runs-root",
        runs_root,
        "--reports-dir",
        runs_root / "reports",
        "--no-progress",
    )
    first = _cli("run", SPEC, *common)
    return {
        "first_run_s": first,
        "rerun_no_report_s": _cli("run", SPEC, *common, "--no-report"),
        "rerun_with_report_s": _cli("run", SPEC, *common),
        "target_s": 5.0,
    }


def report_100(runs_root: Path, out: Path) -> dict:
    """Render a report over 100 runs: the smoke runs' result files cloned into 100 seeds per arm
    set (metrics shifted per clone, so tables and CIs have real spread)."""
    spec = parse_spec(
        yaml.safe_load(SPEC.read_text()), str(SPEC)
    )  # the source that owns the smoke manifest
    table = load_results(runs_root, "path_shape", "smoke")
    trained = table[~table["arm"].str.startswith("ref:")]
    refs = list(table.loc[table["arm"].str.startswith("ref:"), "run_id"])
    ids = []
    for i in range(100):
        src = Path(trained.iloc[i % len(trained)]["run_dir"])
        rid = f"bench{i:011d}"
        dst = run_dir(runs_root, "path_shape", "smoke", rid)
        shutil.copytree(
            src, dst, symlinks=True, dirs_exist_ok=True
        )  # clones share the stages, as arms do
        result = read_result(dst)
        result = dataclasses.replace(
            result,
            run_id=rid,
            seed=i,
            metrics={k: v * (1 + 0.01 * (i % 7)) for k, v in result.metrics.items()},
        )
        write_result(runs_root, dst, result)
        ids.append(rid)
    write_manifest(runs_root, "path_shape", "smoke", ids + refs, spec.source)
    start = time.perf_counter()
    render_report(spec, runs_root, "smoke", out)
    return {"runs": len(ids), "seconds": time.perf_counter() - start}


def run(quick: bool = True, device: str = "cpu") -> dict:
    """All harness overheads (device does not apply: the harness's own work is CPU)."""
    with tempfile.TemporaryDirectory(prefix="ursa-perf-") as tmp:
        root = Path(tmp) / "runs"
        return {
            "grid_1000": grid_1000(root),
            "noop_rerun": noop_rerun(root),
            "report_100": report_100(root, Path(tmp) / "report"),
        }
