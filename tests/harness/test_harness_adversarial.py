"""Adversarial specs: every bad or hostile spec gets one paragraph on stderr and exit 2 from
`python -m harness validate`, no traceback, within seconds and bounded memory, before any compute.

CORPUS below is the list of inputs, each with the words its error must contain. Every case runs
as its own process: a driver interpreter imports the harness once (torch and the plug-ins take
seconds to import), then forks one child per case that runs `python -m harness validate FILE`
(harness/__main__.py through runpy) under an address-space limit and a timeout, so the whole
corpus takes seconds. The inputs the hardening issue reported taking minutes and gigabytes
(alias bomb, 10^6-run grid, 50 MB spec) also run through a fresh interpreter each
(`test_reported_cases_through_a_fresh_interpreter`), and `python -m harness run` refuses a sample
of them the same way without writing anything (`test_run_refuses_them_before_any_compute`).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 30  # per case; unloaded, the slowest (half a MB of YAML) takes ~2 s
EXTRA_MEMORY = 1536 << 20  # address space a case may add to what the harness's imports map
FRESH_MEMORY = 5 << 30  # a fresh interpreter: torch alone maps ~3.5 GB of address space

BASE = {
    "name": "adv",
    "base": {
        "benchmark": {
            "name": "shapes",
            "world": {"frames": 4, "height": 16, "width": 16, "max_objects": 1, "speed": 1.0},
        },
        "tokenizer": {"codebook_size": 65},
        "train": {"steps": 2, "batch_size": 2},
        "sample": {"steps": 2},
        "score": {"which": ["alignment"]},
    },
}


def spec(*edits: tuple[str, object]) -> str:
    """BASE with (dotted path, value) edits, e.g. ("base.train.lr", 0.1), as YAML text."""
    data = json.loads(json.dumps(BASE))
    for key, value in edits:
        node, parts = data, key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return yaml.safe_dump(data, sort_keys=False)


BASE_YAML = spec()


def bomb(levels: int = 9, width: int = 10) -> str:
    """A flow list holding a billion-laughs chain: &l0 [x * width], &l1 [*l0 * width], ..."""
    parts = ["&l0 [" + ", ".join(["lol"] * width) + "]"]
    parts += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def include_chain(n: int) -> Callable[[Path, Path], None]:
    """spec -> inc_1.yaml -> ... -> inc_n.yaml (the last one holds BASE)."""

    def write(tmp: Path, path: Path) -> None:
        path.write_text("include: inc_1.yaml\nname: adv\n")
        for i in range(1, n):
            (tmp / f"inc_{i}.yaml").write_text(f"include: inc_{i + 1}.yaml\n")
        (tmp / f"inc_{n}.yaml").write_text(BASE_YAML)

    return write


def include_fanout(levels: int) -> Callable[[Path, Path], None]:
    """Every file includes the next one twice: 2**levels reads of tiny files."""

    def write(tmp: Path, path: Path) -> None:
        path.write_text("include: [fan_1.yaml, fan_1.yaml]\nname: adv\n")
        for i in range(1, levels):
            (tmp / f"fan_{i}.yaml").write_text(f"include: [fan_{i + 1}.yaml, fan_{i + 1}.yaml]\n")
        (tmp / f"fan_{levels}.yaml").write_text(BASE_YAML)

    return write


def big_file(megabytes: int) -> Callable[[Path, Path], None]:
    def write(tmp: Path, path: Path) -> None:
        with path.open("w") as f:
            f.write(BASE_YAML + "grid:\n  train.lr: [")
            chunk = "0.001, " * 100_000
            for _ in range(megabytes * 1_000_000 // len(chunk) + 1):
                f.write(chunk)
            f.write("0.002]\n")

    return write


def big_includes(tmp: Path, path: Path) -> None:
    """Two includes of 0.6 MB each: the bound is on a spec's files together."""
    for i in (1, 2):
        (tmp / f"part_{i}.yaml").write_text(f"description: '{'x' * 600_000}'\n")
    path.write_text("include: [part_1.yaml, part_2.yaml]\n" + BASE_YAML)


@dataclass(frozen=True)
class Case:
    id: str
    item: int  # the hardening issue's item
    text: str | Callable[[Path, Path], None]  # the spec's YAML, or write(tmp_dir, spec_path)
    needles: tuple[str, ...]  # all must be in the error (key and what was expected)
    file: str = ""  # the file the error names (default: the spec itself)


CORPUS: list[Case] = [
    # 1. alias bombs, in any field, and recursive aliases
    Case(
        "bomb-description",
        1,
        BASE_YAML + f"description: {bomb()}\n",
        ("description", "alias", "10,000", "bomb"),
    ),
    Case(
        "bomb-train-lr",
        1,
        spec(("base.train.lr", "@")).replace("'@'", bomb()),
        ("base.train.lr", "alias"),
    ),
    Case(
        "bomb-grid-values",
        1,
        BASE_YAML + f"grid:\n  train.lr: {bomb()}\n",
        ("grid.train.lr", "alias"),
    ),
    Case(
        "bomb-plugin-option",
        1,
        spec(("base.benchmark.world", "@")).replace("'@'", bomb()),
        ("base.benchmark.world", "alias"),
    ),
    Case(
        "bomb-mapping-keys",
        1,
        BASE_YAML
        + "profiles:\n  smoke: &m0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1}\n"
        + "".join(
            f"  x{i}: &m{i} {{a: *m{i - 1}, b: *m{i - 1}, c: *m{i - 1}, d: *m{i - 1}, e: *m{i - 1}, "
            f"f: *m{i - 1}}}\n"
            for i in range(1, 9)
        ),
        ("profiles.x", "alias"),
    ),
    Case(
        "recursive-alias",
        1,
        spec(("base.train", "@")).replace("'@'", "&t {lr: *t}"),
        ("base.train.lr", "recursive alias", "*t"),
    ),
    # 2. sizes: runs counted before they are built, spec bytes bounded before parsing
    Case(
        "grid-1e6-runs",
        2,
        spec(
            (
                "grid",
                {
                    "train.steps": list(range(1, 101)),
                    "sample.steps": list(range(1, 101)),
                    "train.warmup_steps": list(range(100)),
                },
            )
        ),
        (
            "grid.train.steps",
            "max_runs = 10,000",
            "1,000,000",
            "100 (sample.steps)",
            "max_runs: 1000000",
        ),
    ),
    Case(
        "seeds-beyond-max-runs",
        2,
        spec(("grid", {"path.kind": ["metric", "mixture"]}), ("seeds", list(range(10_001)))),
        ("seeds: expected", "20,002", "10,001 seeds"),
    ),
    Case(
        "profile-beyond-max-runs",
        2,
        spec(("profiles", {"smoke": {"seeds": list(range(12_000))}})),
        ("profiles.smoke.seeds", "12,000", "max_runs"),
    ),
    Case(
        "max-runs-lowered",
        2,
        spec(("grid", {"path.kind": ["metric", "mixture"]}), ("seeds", [0, 1, 2]), ("max_runs", 5)),
        ("max_runs = 5", "got 6"),
    ),
    Case(
        "search-trials-beyond-max-runs",
        2,
        spec(
            (
                "search",
                {
                    "params": {"path.c": {"type": "float", "low": 1, "high": 5}},
                    "n_trials": 10**6,
                    "objective": "alignment",
                },
            )
        ),
        ("search.n_trials", "1,000,000", "max_runs"),
    ),
    Case(
        "grid-list-of-half-a-MB",
        2,
        spec(("grid", {"train.lr": "@"})).replace(
            "'@'", "[" + ", ".join(f"0.{i:05d}1" for i in range(1, 60_000)) + "]"
        ),
        ("grid.train.lr", "59,999", "max_runs"),
    ),
    Case("spec-file-50MB", 2, big_file(50), ("1,000,000 bytes", "got 5")),
    Case(
        "includes-over-1MB-together",
        2,
        big_includes,
        ("1,000,000 bytes", "with the files it includes"),
        file="part_2.yaml",
    ),
    # 3. depth: include chains, nesting (the composer recurses; checked while composing)
    Case(
        "include-chain-1500",
        3,
        include_chain(1500),
        ("include", "32 files deep"),
        file="inc_31.yaml",
    ),
    Case("include-fanout", 3, include_fanout(12), ("include", "at most 256 files"), file="fan_"),
    Case(
        "flow-lists-10000-deep",
        3,
        BASE_YAML + "grid:\n  train.lr: " + "[" * 10_000 + "]" * 10_000 + "\n",
        ("grid.train.lr[0][0]", "64 levels", "line 22"),
    ),
    Case(
        "unclosed-brackets",
        3,
        BASE_YAML + "description: " + "[" * 5_000 + "\n",
        ("description", "64 levels"),
    ),
    Case(
        "block-mappings-200-deep",
        3,
        BASE_YAML + "profiles:\n" + "".join(" " * (i + 2) + f"k{i}:\n" for i in range(200)) + "",
        ("profiles.k0.k1", "64 levels"),
    ),
    Case(
        "deep-through-aliases",
        3,
        BASE_YAML
        + "description:\n  - &a "
        + "[" * 40
        + "]" * 40
        + "\n  - &b "
        + "[" * 40
        + "*a"
        + "]" * 40
        + "\n",
        ("description[1]", "64 levels", "aliases"),
    ),
    # 4. names are one safe path component
    Case("name-dotdot", 4, spec(("name", "..")), ("name", "one safe path component", "'..'")),
    Case("name-dot", 4, spec(("name", ".")), ("name", "one safe path component")),
    Case("name-index-sqlite", 4, spec(("name", "index.sqlite")), ("name", "index.sqlite")),
    Case("name-index-sqlite-wal", 4, spec(("name", "Index.sqlite-wal")), ("name", "index.sqlite")),
    Case(
        "name-300-chars",
        4,
        spec(("name", "a" * 300)),
        ("name", "at most 64 characters", "300 characters"),
    ),
    Case("name-store-dir", 4, spec(("name", "_stages")), ("name", "_stages")),
    Case("name-path", 4, spec(("name", "a/b")), ("name", "one safe path component")),
    Case(
        "name-leading-dash", 4, spec(("name", "-rf")), ("name", "starting with a letter or digit")
    ),
    Case("name-unicode", 4, spec(("name", "näme")), ("name", "one safe path component")),
    # 5. accepted before, wrong: non-finite floats, booleans as numbers, duplicates, seeds, overrides
    Case(
        "lr-inf",
        5,
        spec(("base.train.lr", float("inf"))),
        ("base.train.lr", "finite number", "inf"),
    ),
    Case(
        "grad-clip-nan",
        5,
        spec(("base.train.grad_clip", float("nan"))),
        ("base.train.grad_clip", "finite number"),
    ),
    Case(
        "path-c-inf", 5, spec(("base.path", {"c": float("inf")})), ("base.path.c", "finite number")
    ),
    Case(
        "path-alpha-nan-string",
        5,
        spec(("base.path", {"alpha": "nan"})),
        ("base.path.alpha", "finite number"),
    ),
    Case(
        "cfg-scale-inf",
        5,
        spec(("base.sample.cfg_scale", float("-inf"))),
        ("base.sample.cfg_scale",),
    ),
    Case(
        "grid-shift-inf",
        5,
        spec(("grid", {"train.shift": [1.0, float("inf")]})),
        ("grid.train.shift[1]", "train.shift", "finite number"),
    ),
    Case(
        "timeout-inf",
        5,
        spec(("executor", {"timeout_min": float("inf")})),
        ("executor.timeout_min", "finite"),
    ),
    Case(
        "steps-true",
        5,
        spec(("base.train.steps", True)),
        ("base.train.steps", "expected a number", "True"),
    ),
    Case(
        "seeds-booleans",
        5,
        BASE_YAML + "seeds: [true, yes]\n",
        ("seeds[0]", "expected a number", "True"),
    ),
    Case(
        "grid-steps-on",
        5,
        BASE_YAML + "grid:\n  sample.steps: [2, on]\n",
        ("grid.sample.steps[1]", "sample.steps", "expected a number"),
    ),
    Case(
        "max-parallel-yes",
        5,
        BASE_YAML + "executor: {max_parallel: yes}\n",
        ("executor.max_parallel", "expected a number"),
    ),
    Case(
        "snapshots-bool",
        5,
        spec(("base.train.snapshots", [0.5, True])),
        ("base.train.snapshots[1]", "number"),
    ),
    Case(
        "plugin-option-bool",
        5,
        spec(("base.benchmark.train_size", True)),
        ("benchmark.train_size", "expected a number"),
    ),
    Case(
        "profile-value-bool",
        5,
        spec(("profiles", {"smoke": {"train.batch_size": True}})),
        ("profiles.smoke", "train.batch_size", "expected a number"),
    ),
    Case(
        "duplicate-key",
        5,
        BASE_YAML.replace("    steps: 2\n", "    steps: 2\n    lr: 0.1\n    steps: 3\n", 1),
        ("base.train.steps", "each key once", "twice"),
    ),
    Case(
        "duplicate-top-key",
        5,
        BASE_YAML + "name: other\n",
        ("name", "each key once", "lines 1 and"),
    ),
    Case(
        "duplicate-flow-key",
        5,
        BASE_YAML + "grid: {train.lr: [0.1], train.lr: [0.2]}\n",
        ("grid.train.lr", "each key once"),
    ),
    Case("duplicate-seeds", 5, spec(("seeds", [0, 1, 0])), ("seeds", "distinct seeds", "0 twice")),
    Case(
        "duplicate-grid-values",
        5,
        spec(("grid", {"path.kind": ["metric", "metric"]})),
        ("grid", "distinct values", "'metric' twice"),
    ),
    Case(
        "duplicate-zip-points",
        5,
        spec(("zip", [{"train.shift": [1.0, 2.0, 1.0], "sample.shift": [1.0, 2.0, 1.0]}])),
        ("zip", "distinct points", "train.shift=1.0, sample.shift=1.0"),
    ),
    Case("empty-zip-group", 5, spec(("zip", [{}])), ("zip", "at least one axis", "no runs")),
    Case("seed-2**63", 5, spec(("seeds", [0, 2**63])), ("seeds", "2**63", str(2**63))),
    Case("seed-negative", 5, spec(("seeds", [-1])), ("seeds", "[0, 2**63)", "-1")),
    Case(
        "search-seed-too-big",
        5,
        spec(
            (
                "search",
                {
                    "params": {"path.c": {"type": "float", "low": 1, "high": 5}},
                    "objective": "alignment",
                    "sampler_seed": 2**40,
                },
            )
        ),
        ("search.sampler_seed", "less than"),
    ),
    Case(
        "override-negative-size",
        5,
        spec(("base.model", {"overrides": {"hidden_size": -64}})),
        ("base.model.overrides", "hidden_size", "positive integer", "-64"),
    ),
    Case(
        "override-zero-count",
        5,
        spec(("base.model", {"overrides": {"num_layers": 0}})),
        ("base.model.overrides", "num_layers", "positive integer"),
    ),
    Case(
        "override-fractional",
        5,
        spec(("base.model", {"overrides": {"head_dim": 7.5}})),
        ("base.model.overrides", "head_dim", "positive integer", "7.5"),
    ),
    Case(
        "override-bool",
        5,
        spec(("base.model", {"overrides": {"num_heads": True}})),
        ("base.model.overrides", "num_heads", "positive integer"),
    ),
    Case(
        "override-unknown",
        5,
        spec(("base.model", {"overrides": {"hiden_size": 64}})),
        ("base.model.overrides", "URSAConfig", "Did you mean 'hidden_size'"),
    ),
    Case(
        "override-inf-float",
        5,
        spec(("base.model", {"overrides": {"rope_theta": float("inf")}})),
        ("base.model.overrides", "rope_theta", "finite"),
    ),
    Case(
        "grid-override-negative",
        5,
        spec(("grid", {"model.overrides.intermediate_size": [64, -1]})),
        ("grid.model.overrides.intermediate_size[1]", "positive integer"),
    ),
    Case(
        "duplicate-tasks",
        5,
        spec(("base.sample.tasks", ["t2v", "t2v"])),
        ("base", "sample.tasks without duplicates"),
    ),
    # 6. valid alone, meaningless together
    Case(
        "cfg-without-uncond",
        6,
        spec(("base.sample.cfg_scale", 3.0)),
        ("base", "sample.cfg_scale 3", "train.p_uncond > 0", "e.g. 0.1"),
    ),
    Case(
        "cfg-in-grid-without-uncond",
        6,
        spec(("grid", {"sample.cfg_scale": [1.0, 2.0]})),
        ("grid.sample.cfg_scale[1]", "train.p_uncond"),
    ),
    Case(
        "kind-x-c-foreign-key",
        6,
        spec(("grid", {"path.kind": ["masked", "metric"], "path.c": [1.0, 2.0]})),
        ("(run-config key path.c)", "path.kind 'masked'", "kind, exponent"),
    ),
    Case(
        "kind-zip-calibrate-foreign-key",
        6,
        spec(("zip", [{"path.kind": ["mixture", "mixture"], "path.calibrate": [False, True]}])),
        ("zip[0].path.kind[0] (run-config key path.calibrate)", "path.kind 'mixture'"),
    ),
    Case(
        "exponent-on-metric-arms",
        6,
        spec(("grid", {"path.exponent": [1.0, 2.0]})),
        ("grid.path.exponent[0]", "path.kind 'metric'", "kind, c, alpha, calibrate"),
    ),
    Case(
        "int-and-float-merge",
        6,
        spec(("grid", {"train.shift": [1, 1.0]})),
        ("grid.train.shift", "same run", "1 and 1.0"),
    ),
    Case(
        "seed-on-an-axis", 6, spec(("grid", {"train.seed": [1, 2]})), ("grid.train.seed", "seeds")
    ),
    Case("seed-in-base", 6, spec(("base.sample.seed", 5)), ("base.sample.seed", "seeds")),
    Case(
        "report-x-not-an-axis",
        6,
        spec(("grid", {"train.shift": [1.0, 2.0]}), ("report", {"x": "train.shfit"})),
        ("report.x", "Did you mean 'train.shift'"),
    ),
    Case(
        "report-x-no-axes", 6, spec(("report", {"x": "train.shift"})), ("report.x", "varies none")
    ),
    Case(
        "report-metric-typo",
        6,
        spec(("report", {"metrics": ["alignment", "alignmnet"]})),
        ("report.metrics[1]", "Did you mean 'alignment'"),
    ),
    Case(
        "report-metric-of-absent-task",
        6,
        spec(("report", {"metrics": ["i2v.alignment"]})),
        ("report.metrics[0]", "'i2v.alignment'"),
    ),
    Case(
        "report-headline-typo",
        6,
        spec(("report", {"headline": "train_los"})),
        ("report.headline", "Did you mean 'train_loss'"),
    ),
    Case(
        "search-objective-typo",
        6,
        spec(
            (
                "search",
                {
                    "params": {"path.c": {"type": "float", "low": 1, "high": 5}},
                    "objective": "alignmnt",
                },
            )
        ),
        ("search.objective", "Did you mean 'alignment'"),
    ),
    # 7. "did you mean" over every dotted key of the schema
    Case(
        "unknown-key-typo-section",
        7,
        spec(("grid", {"trian.steps": [1, 2]})),
        ("grid.trian.steps", "Did you mean 'train.steps'"),
    ),
    Case(
        "unknown-key-inherited",
        7,
        spec(("grid", {"sample.cfg_scal": [1.0, 2.0]})),
        ("grid.sample.cfg_scal", "Did you mean 'sample.cfg_scale'"),
    ),
    Case(
        "unknown-key-lists-several",
        7,
        spec(("profiles", {"smoke": {"sample.stpes": 3}})),
        ("profiles.smoke.sample.stpes", "'sample.steps'", "also close", "train.steps"),
    ),
    Case(
        "unknown-key-no-section",
        7,
        spec(("grid", {"batch_size": [1, 2]})),
        ("grid.batch_size", "train.batch_size", "sample.batch_size"),
    ),
    # odds and ends a hostile file can hold
    Case(
        "python-tag",
        0,
        BASE_YAML + "description: !!python/object/apply:os.system ['true']\n",
        ("valid YAML", "python/object"),
    ),
    Case("two-documents", 0, BASE_YAML + "---\nname: b\n", ("valid YAML", "single document")),
    Case(
        "huge-integer",
        0,
        BASE_YAML.replace("steps: 2", "steps: 1" + "0" * 5000, 1),
        ("line 14", "5,001"),
    ),
    Case(
        "binary-junk", 0, lambda tmp, p: p.write_bytes(b"\xff\xfe\x00name: x\x00\x01"), ("UTF-8",)
    ),
    Case("top-level-list", 0, "- 1\n- 2\n", ("<top level>", "mapping")),
    Case(
        "key-with-newline",
        0,
        spec(("profiles", {"smoke": {"a\nb": 1}})),
        ("profiles.smoke", "printable", "'a\\nb'"),
    ),
    Case(
        "key-of-300-chars",
        0,
        spec(("profiles", {"smoke": {"k" * 300: 1}})),
        ("profiles.smoke", "300 characters"),
    ),
    Case("huge-value-in-message", 0, spec(("report", {"x": "x" * 100_000})), ("report.x", "...")),
]


# ----------------------------------------------------------------------------- the runner

DRIVER = textwrap.dedent(r"""
    import json, os, resource, runpy, signal, sys, time, traceback

    import harness.cli  # noqa: F401  (imports shared by every case)
    from harness.plugins import load_plugins

    load_plugins()
    cases, extra, timeout = json.load(sys.stdin)


    def child(case):
        code = 1
        try:
            os.dup2(os.open(case["path"] + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            os.dup2(os.open(case["path"] + ".stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
            vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
            resource.setrlimit(resource.RLIMIT_AS, (vm + extra, vm + extra))
            sys.argv = ["python -m harness", *case["argv"]]
            runpy.run_module("harness", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


    results, running, todo = {}, {}, list(cases)
    while todo or running:
        while todo and len(running) < (os.cpu_count() or 1):
            case = todo.pop(0)
            pid = os.fork()
            if pid == 0:
                child(case)
            running[pid] = (case, time.monotonic())
        for pid, (case, start) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            late = not done and time.monotonic() - start > timeout
            if late:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            if done or late:
                del running[pid]
                results[case["id"]] = {
                    "rc": None if late else os.waitstatus_to_exitcode(status),
                    "seconds": time.monotonic() - start,
                    "stderr": open(case["path"] + ".stderr", errors="replace").read(),
                    "stdout": open(case["path"] + ".stdout", errors="replace").read(),
                }
        time.sleep(0.005)
    json.dump(results, sys.stdout)
""")


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }


def _write(case: Case, tmp: Path) -> Path:
    folder = tmp / case.id
    folder.mkdir(parents=True)
    path = folder / f"{case.id}.yaml"
    if callable(case.text):
        case.text(folder, path)
    else:
        path.write_text(case.text)
    return path


RUN_TOO = (
    "bomb-grid-values",
    "grid-1e6-runs",
    "include-chain-1500",
    "name-dotdot",
    "steps-true",
    "duplicate-key",
    "cfg-without-uncond",
    "kind-x-c-merges",
    "report-metric-typo",
)


def run_corpus(tmp: Path) -> dict[str, dict]:
    """{case id: rc, seconds, stderr, stdout, path} of `python -m harness validate FILE` for every case,
    and under "run:<case id>" of `python -m harness run FILE` (runs root tmp/runs) for RUN_TOO."""
    todo = []
    for c in CORPUS:
        path = str(_write(c, tmp / "validate"))
        todo.append({"id": c.id, "path": path, "argv": ["validate", path]})
    for c in CORPUS:
        if c.id in RUN_TOO:
            path = str(_write(c, tmp / "run"))
            todo.append(
                {
                    "id": f"run:{c.id}",
                    "path": path,
                    "argv": [
                        "run",
                        path,
                        "--runs-root",
                        str(tmp / "runs"),
                        "--reports-dir",
                        str(tmp / "reports"),
                        "--no-progress",
                    ],
                }
            )
    res = subprocess.run(
        [sys.executable, "-c", DRIVER],
        input=json.dumps([todo, EXTRA_MEMORY, TIMEOUT_S]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=TIMEOUT_S * len(todo),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads(res.stdout)
    for c in todo:
        results[c["id"]]["path"] = c["path"]
    return results


@pytest.fixture(scope="module")
def corpus_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("adversarial")


@pytest.fixture(scope="module")
def corpus_results(corpus_tmp: Path) -> dict[str, dict]:
    return run_corpus(corpus_tmp)


def _check_one_paragraph(
    case: Case, path: Path, rc: int | None, stderr: str, seconds: float
) -> None:
    assert rc is not None, f"{case.id}: still running after {TIMEOUT_S} s"
    assert "Traceback" not in stderr, stderr[-3000:]
    assert rc == 2, f"{case.id}: exit {rc}: {stderr[-2000:]}"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, (
        f"{case.id}: expected one paragraph, got {len(lines)} lines: {stderr[:2000]}"
    )
    msg = lines[0]
    assert msg.startswith("spec error: "), msg
    assert (case.file or path.name) in msg, f"{case.id}: the error must name the file: {msg}"
    for needle in case.needles:
        assert needle in msg, f"{case.id}: {needle!r} not in: {msg}"
    assert len(msg) < 1500, f"{case.id}: a paragraph, not a dump ({len(msg)} characters)"
    assert seconds < TIMEOUT_S, f"{case.id}: {seconds:.1f} s"


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_adversarial_spec_is_one_clean_error(case: Case, corpus_results: dict[str, dict]) -> None:
    r = corpus_results[case.id]
    _check_one_paragraph(case, Path(r["path"]), r["rc"], r["stderr"], r["seconds"])


def test_run_refuses_them_before_any_compute(
    corpus_results: dict[str, dict], corpus_tmp: Path
) -> None:
    """`python -m harness run` checks the same way: exit 2, one paragraph, nothing written."""
    for case in [c for c in CORPUS if c.id in RUN_TOO]:
        r = corpus_results[f"run:{case.id}"]
        _check_one_paragraph(case, Path(r["path"]), r["rc"], r["stderr"], r["seconds"])
    assert not (corpus_tmp / "runs").exists() and not (corpus_tmp / "reports").exists()


def test_corpus_covers_every_item() -> None:
    assert {c.item for c in CORPUS} >= {1, 2, 3, 4, 5, 6, 7}
    assert len({c.id for c in CORPUS}) == len(CORPUS)


REPORTED = (
    "bomb-description",
    "grid-1e6-runs",
    "spec-file-50MB",
)  # the ones that took minutes and gigabytes


def test_reported_cases_through_a_fresh_interpreter(tmp_path: Path) -> None:
    """The inputs the issue reported, each through its own `python -m harness validate` process
    (nothing shared with the driver), under an address-space limit, concurrently."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (FRESH_MEMORY, FRESH_MEMORY))

    cases = {c.id: c for c in CORPUS if c.id in REPORTED}
    procs = {}
    for cid, case in cases.items():
        path = _write(case, tmp_path)
        procs[cid] = (
            path,
            subprocess.Popen(
                [sys.executable, "-m", "harness", "validate", str(path)],
                cwd=ROOT,
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=limit,
            ),
        )
    for cid, (path, proc) in procs.items():
        try:
            _, err = proc.communicate(timeout=TIMEOUT_S * 2)  # the start-up (torch) counts here
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"{cid}: still running after {TIMEOUT_S * 2} s")
        _check_one_paragraph(cases[cid], path, proc.returncode, err, 0.0)


# ----------------------------------------------------------------------------- what must keep working


def _validate(
    tmp_path: Path, text: str, *args: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    from harness.cli import main

    path = tmp_path / "ok.yaml"
    path.write_text(text)
    code = main(["validate", str(path), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_validate_counts_references_and_show_lists_arms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate prints what run makes: grid x seeds runs plus one run per reference generator."""
    code, out = _validate(
        tmp_path,
        spec(
            ("grid", {"path.kind": ["masked", "metric"]}), ("seeds", [0, 1]), ("base.train.lr", "@")
        ).replace("'@'", "1e-3"),
        "--show",
        capsys=capsys,
    )
    assert code == 0, out
    assert "4 runs + 6 references, 4 trained models" in out, out
    for arm in ("path.kind=masked  0", "path.kind=masked  1", "path.kind=metric  1"):
        assert arm in out
    shown = yaml.safe_load(out.split("seed 0):\n", 1)[1])
    assert (
        shown["path"]["kind"] == "masked" and shown["train"]["lr"] == 0.001
    )  # YAML 1.2 float: 1e-3


def test_validate_and_run_plan_agree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The numbers validate prints are those of the runs harness.runner.plan dispatches (no compute:
    the data fingerprint is stubbed)."""
    from harness import runner
    from harness.specfile import load_spec

    text = spec(("grid", {"path.kind": ["masked", "mixture", "metric"]}), ("seeds", [0, 1, 2]))
    code, out = _validate(tmp_path, text, capsys=capsys)
    monkeypatch.setattr(runner, "data_fingerprint", lambda root: lambda data: "stub")
    planned = runner.plan(load_spec(tmp_path / "ok.yaml"), "default", tmp_path / "runs")
    runs = len([r for r in planned if r.reference is None])
    refs = len(planned) - runs
    assert code == 0 and (runs, refs) == (9, 6) and f"{runs} runs + {refs} references" in out, out


def test_max_runs_can_be_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(
        tmp_path,
        spec(("grid", {"path.kind": ["metric", "mixture"]}), ("seeds", [0, 1, 2]), ("max_runs", 6)),
        capsys=capsys,
    )
    assert code == 0 and "6 runs" in out, out


def test_loader_keeps_what_yaml_allows(tmp_path: Path) -> None:
    """Bounded is not crippled: modest aliases, merge keys and YAML 1.2 floats load."""
    from harness.specfile import load_spec

    text = (
        BASE_YAML + "grid:\n  train.lr: [1e-3, 2.5E-3, .01]\n"
        "profiles:\n  smoke: &small {train.steps: 1}\n  default: {<<: *small, sample.steps: 3}\n"
    )
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    spec_ = load_spec(path)
    assert spec_.grid["train.lr"] == [0.001, 0.0025, 0.01]
    assert spec_.profiles["default"] == {"train.steps": 1, "sample.steps": 3}


def test_overrides_are_checked_against_ursa_config_without_loading_transformers(
    tmp_path: Path,
) -> None:
    """model.overrides are checked against URSAConfig's own fields, and validating a spec that has
    some (path_shape's default profile) does not import transformers (seconds of start-up)."""
    script = textwrap.dedent("""
        import dataclasses, sys
        from harness.cli import main
        from ursa.config import _ursa_fields
        assert main(["validate", "ablations/path_shape.yaml"]) == 0
        assert "transformers" not in sys.modules, "validate imported transformers"
        from ursa.model import URSAConfig
        assert _ursa_fields() == {f.name: str(f.type) for f in dataclasses.fields(URSAConfig)}
    """)
    res = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-3000:]


def test_shipped_specs_still_validate() -> None:
    from harness.expand import expand
    from harness.specfile import load_spec

    for path in sorted((ROOT / "ablations").glob("*.yaml")):
        for profile in ("smoke", "ci", "default", "full"):
            assert expand(load_spec(path), profile)
