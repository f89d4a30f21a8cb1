"""CLI: validate exit codes, the path_shape smoke run + report + status, check's clean errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.records import RunResult, RunState
from harness.store import run_dir, write_result

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "reports" / "baselines" / "path_shape.json"


def harness(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_validate_ok_and_bad_spec(tmp_path: Path) -> None:
    from harness.expand import expand
    from harness.specfile import load_spec

    ok = harness("validate", "ablations/path_shape.yaml", "--profile", "smoke")
    n_runs = len(
        expand(load_spec(ROOT / "ablations" / "path_shape.yaml"), "smoke")
    )  # the spec's grid x seeds
    assert ok.returncode == 0 and f" {n_runs} runs" in ok.stdout, ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nbase:\n  benchmark: {name: shapes}\n  score: {which: [alignment]}\n"
        "  train: {shfit: 2}\n"
    )
    res = harness("validate", str(bad))
    assert (
        res.returncode == 2
        and "Did you mean 'shift'" in res.stderr
        and "Traceback" not in res.stderr
    )


def test_smoke_path_shape_end_to_end(tmp_path: Path) -> None:
    """The smoke profile end to end (run + report, a rerun computes nothing, status)."""
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    start = time.perf_counter()
    res = harness(
        "run",
        "ablations/path_shape.yaml",
        "--profile",
        "smoke",
        "--runs-root",
        str(runs),
        "--reports-dir",
        str(reports),
        "--no-progress",
    )
    elapsed = time.perf_counter() - start
    assert res.returncode == 0, res.stderr[-3000:]
    out = reports / "path_shape" / "smoke"  # --reports-dir R -> R/<spec>/<profile>/
    report = (out / "report.md").read_text()
    for arm in (
        "path.kind=masked",
        "path.kind=mixture",
        "path.kind=metric",
        "ref:real",
        "ref:random",
    ):
        assert arm in report, arm
    assert (out / "report.html").exists() and (out / "results.csv").exists()
    print(f"smoke run + report: {elapsed:.1f} s")

    before = _run_files(runs)
    again = harness(
        "run",
        "ablations/path_shape.yaml",
        "--profile",
        "smoke",
        "--runs-root",
        str(runs),
        "--reports-dir",
        str(reports),
        "--no-progress",
        "--no-report",
    )
    assert again.returncode == 0 and "0 not done, 0 dispatched" in again.stdout, again.stdout
    assert _run_files(runs) == before, (
        "a rerun of a completed spec must write nothing in any run directory"
    )

    status = harness(
        "status", "ablations/path_shape.yaml", "--profile", "smoke", "--runs-root", str(runs)
    )
    assert status.returncode == 0 and "train,sample,score" in status.stdout

    # the gate (`check` against the committed baseline, of the `ci` profile, whose arms learn) runs
    # in tests/harness/test_harness_regression_gate.py; a baseline of another profile is refused
    check = harness(
        "check",
        "ablations/path_shape.yaml",
        "--profile",
        "smoke",
        "--runs-root",
        str(runs),
        "--baseline",
        str(BASELINE),
    )
    assert check.returncode == 2 and "got one made for path_shape/ci" in check.stderr, check.stderr


def _run_files(runs: Path) -> dict[str, int]:
    """{path: mtime_ns} of every file in every run directory (results, configs, stage outputs)."""
    return {
        str(f): f.stat().st_mtime_ns
        for f in (runs / "path_shape" / "smoke").glob("*/**/*")
        if f.is_file()
    }


def test_ls_on_empty_store(tmp_path: Path) -> None:
    res = harness("ls", "--runs-root", str(tmp_path))
    assert res.returncode == 0 and "no runs" in res.stdout
    # the repository's spec files are listed, each with its (absent) stored runs
    assert (
        "ablations/path_shape.yaml" in res.stdout and "path_shape  (no stored runs)" in res.stdout
    )


def test_ls_lists_spec_files_with_their_runs(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    (specs / "sub").mkdir(parents=True)
    (specs / "a.yaml").write_text("name: alpha\n")
    (specs / "sub" / "b.yml").write_text("a: &x [*x]\n")  # unreadable as a spec: listed by its stem
    (specs / "sub" / "shared.yaml").write_text(
        "profiles: {}\n"
    )  # an included file, no spec: not listed
    root = tmp_path / "runs"
    write_result(
        root,
        run_dir(root, "alpha", "smoke", "r1"),
        RunResult(run_id="r1", spec="alpha", profile="smoke", arm="a", seed=0, state=RunState.DONE),
    )
    res = harness("ls", "--runs-root", str(root), "--specs", str(specs))
    assert res.returncode == 0, res.stderr
    lines = [" ".join(line.split()) for line in res.stdout.splitlines()]
    assert f"{specs / 'a.yaml'} alpha (smoke: 1 done)" in lines
    assert f"{specs / 'sub' / 'b.yml'} b (no stored runs)" in lines
    assert "shared" not in res.stdout


@pytest.mark.parametrize(
    "command, extra",
    [
        ("status", []),
        ("report", ["--reports-dir", "{tmp}/reports"]),
        ("check", ["--baseline", str(BASELINE)]),
    ],
)
def test_status_report_check_on_empty_store_are_one_clean_error(
    tmp_path: Path, command: str, extra: list[str]
) -> None:
    """Nothing to show, report or check: exit 2 with a message naming the runs root and profile."""
    res = harness(
        command,
        "ablations/path_shape.yaml",
        *(a.format(tmp=tmp_path) for a in extra),
        "--runs-root",
        str(tmp_path / "runs"),
        "--profile",
        "smoke",
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert (
        "no runs" in res.stderr
        and str(tmp_path / "runs") in res.stderr
        and "profile smoke" in res.stderr
    )
    assert "Traceback" not in res.stderr and not (tmp_path / "reports").exists()


def test_plan_without_runs_and_replicate_on_used_seeds_are_one_clean_error(tmp_path: Path) -> None:
    runs = ("--runs-root", str(tmp_path / "runs"))
    res = harness("plan", "ablations/path_shape.yaml", "--effect", "0.05", *runs)
    assert res.returncode == 2 and "no runs" in res.stderr and "Traceback" not in res.stderr
    res = harness("replicate", "ablations/path_shape.yaml", "--seeds", "3-6", *runs)
    assert (
        res.returncode == 2
        and "13, 14, 15), got 3, 4, 5, 6: a replicate needs fresh seeds" in res.stderr
    ), res.stderr
    res = harness("replicate", "ablations/path_shape.yaml", "--seeds", "9-7", *runs)
    assert res.returncode == 2 and "--seeds '9-7'" in res.stderr
    assert not (tmp_path / "runs").exists()


def test_plan_reads_the_variance_of_a_pilot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pilot of 3 seeds (result rows only: one value per run): each test's MDE and the seeds a
    given effect needs; a larger effect never needs more seeds."""
    import yaml
    from test_harness_report import RUNS, SPEC, write_runs

    from harness.cli import main

    spec = tmp_path / "timestep_shift.yaml"
    spec.write_text(
        yaml.safe_dump({**SPEC, "report": {"headline": "alignment", "baseline": "train.shift=1"}})
    )
    runs = dict(RUNS)
    runs["train.shift=3, train.shift_rule=fixed"] = [
        ("done", 0.8, 1.7),
        ("done", 0.85, 1.6),
        ("done", 0.95, 1.5),
    ]
    write_runs(tmp_path / "runs", runs, profile="default")
    needs = []
    for effect in ("0.05", "0.3"):
        root = str(tmp_path / "runs")
        assert main(["plan", str(spec), "--effect", effect, "--runs-root", root]) == 0
        out = capsys.readouterr().out
        assert "primary: train.shift=3, train.shift_rule=fixed: alignment at the end of" in out
        assert "3 seeds (one value per run)" in out and "MDE now" in out
        needs.append(int(out.strip().splitlines()[-1].split()[-1]))
    assert needs[0] >= needs[1] >= 2


def test_env_is_wired_to_harness_env(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    with pytest.raises(SystemExit) as exit_info:  # argparse --help of harness.env.main_env
        main(["env", "--help"])
    assert exit_info.value.code == 0 and "vbench" in capsys.readouterr().out


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"metrics": {"alignment": 3}}', None])
def test_check_with_a_bad_baseline_is_one_clean_error(
    tmp_path: Path, content: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_harness_report import write_runs  # the results-contract fixture (same tests dir)

    from harness.cli import main

    write_runs(
        tmp_path / "runs", spec="path_shape", profile="default"
    )  # runs to check, so the baseline is read
    baseline = tmp_path / "baseline.json"
    if content is not None:  # None: the file does not exist
        baseline.write_text(content)
    code = main(
        [
            "check",
            "ablations/path_shape.yaml",
            "--runs-root",
            str(tmp_path / "runs"),
            "--baseline",
            str(baseline),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--baseline" in err and "Traceback" not in err, err


def test_search_trial_reusing_a_grid_run_is_counted_once(
    tmp_path: Path, tmp_path_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The enqueued trial is the base point itself, so its run is the grid run: 1 + 6 references, not 8."""
    from harness_fixtures import seeded_runs_root, tiny_spec

    from harness.cli import main

    root = seeded_runs_root(tmp_path, tmp_path_factory)
    search = {
        "params": {"path.c": {"type": "float", "low": 1.0, "high": 5.0}},
        "n_trials": 1,
        "objective": "alignment",
        "direction": "maximize",
        "enqueue": [{"path.c": 3.0}],
    }
    spec = tiny_spec(tmp_path / "s.yaml", steps=2, search=search)
    code = main(["run", str(spec), "--runs-root", str(root), "--no-report", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "7 done, 0 not done" in out, out
    meta = json.loads(next((root / "tiny" / "default").glob("*/config.json")).read_text())
    from harness.data import (
        data_for,
    )  # config.json records the data fingerprint that entered the id
    from harness.spec import RunConfig

    assert meta["data"] == data_for(RunConfig.model_validate(meta["config"]), root).fingerprint


def test_version_and_a_baseline_of_another_profile_are_one_line(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "harness", "--version"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.startswith("ursa-bench ")
    from harness.regression_gate import check
    from harness.specfile import load_spec

    spec = load_spec(repo / "ablations" / "path_shape.yaml")
    runs = tmp_path / "runs"
    from harness.records import RunResult, RunState
    from harness.store import write_manifest, write_result

    rdir = runs / "path_shape" / "default" / "r1"
    write_result(
        runs,
        rdir,
        RunResult(
            run_id="r1",
            spec="path_shape",
            profile="default",
            arm="a",
            seed=0,
            state=RunState.DONE,
            metrics={"alignment": 0.5},
        ),
    )
    write_manifest(runs, "path_shape", "default", ["r1"], spec.source)
    with pytest.raises(
        ValueError,
        match="expected a baseline of path_shape/default, got one made for path_shape/ci",
    ):
        check(spec, runs, "default", repo / "reports" / "baselines" / "path_shape.json")


def test_every_option_has_help() -> None:
    """`--help` of every subcommand explains every option (no bare flags)."""
    import argparse

    from harness.cli import parser

    def options(p: argparse.ArgumentParser, where: str) -> list[tuple[str, argparse.Action]]:
        out = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out += options(sub, f"{where} {name}")
            elif not isinstance(action, argparse._HelpAction):
                out.append((f"{where} {'/'.join(action.option_strings) or action.dest}", action))
        return out

    found = options(parser(), "harness")
    assert len(found) > 30
    bare = [name for name, action in found if not action.help or action.help == argparse.SUPPRESS]
    assert not bare, f"options without help text: {bare}"


# ----------------------------------------------------------------------------- issue 27: the CLI's start


def test_help_starts_without_torch() -> None:
    """`python -m harness --help` imports no torch (it took 2.5 s; speed itself is measured, not tested)."""
    code = (
        "import sys, runpy; sys.argv = ['harness', '--help']\ntry:\n    runpy.run_module('harness', "
        "run_name='__main__')\nexcept SystemExit:\n    pass\nprint('TORCH', 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "usage: python -m harness" in out.stdout and out.stdout.strip().endswith(
        "TORCH False"
    ), out.stderr


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_is_one_line_and_exit_130(signal_name: str) -> None:
    """While the CLI imports torch (the first second of `validate`): no traceback, no silent death."""
    import signal

    # -X importtime names each import on stderr as it ends: the signal goes out once harness.cpu,
    # the first import after __main__ installs its handlers, is in (a fixed sleep raced the
    # interpreter's own start on a loaded host); torch takes seconds to import after it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "harness",
            "validate",
            "ablations/path_shape.yaml",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:
        if line.rstrip().endswith(" harness.cpu"):
            break
    proc.send_signal(getattr(signal, signal_name))
    out, err = proc.communicate(timeout=120)
    said = [line for line in err.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 130 and said == ["interrupted"], (proc.returncode, said)


def test_profiles_are_named_from_the_spec(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nbase:\n  benchmark: {name: shapes}\n  score: {which: [alignment]}\n"
        "profiles:\n  full: {train.steps: 2}\n"
    )
    res = harness("validate", str(spec), "--profile", "smoke")
    assert (
        res.returncode == 0
        and f"note: {spec} defines no profile 'smoke' (it defines: full)" in res.stderr
    )
    res = harness("validate", str(spec), "--profile", "fast")
    assert (
        res.returncode == 2
        and "--profile 'fast': expected one of smoke, ci, default, full" in res.stderr
    )
    assert "defines profiles: full" in res.stderr and "Traceback" not in res.stderr


def test_status_without_a_profile_names_the_profiles_that_have_runs(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_result(
        root,
        run_dir(root, "path_shape", "smoke", "r1"),
        RunResult(
            run_id="r1", spec="path_shape", profile="smoke", arm="a", seed=0, state=RunState.DONE
        ),
    )
    res = harness("status", "ablations/path_shape.yaml", "--runs-root", str(root))
    assert res.returncode == 2 and "runs exist for profile smoke (pass --profile)" in res.stderr, (
        res.stderr
    )


def test_ls_attributes_runs_to_the_spec_file_that_made_them(tmp_path: Path) -> None:
    from harness.store import write_manifest

    specs = tmp_path / "specs"
    specs.mkdir()
    original, copy = specs / "a.yaml", specs / "copy.yaml"
    for path in (original, copy):
        path.write_text("name: alpha\n")
    root = tmp_path / "runs"
    write_result(
        root,
        run_dir(root, "alpha", "smoke", "r1"),
        RunResult(run_id="r1", spec="alpha", profile="smoke", arm="a", seed=0, state=RunState.DONE),
    )
    write_manifest(root, "alpha", "smoke", ["r1"], str(original))
    res = harness("ls", "--runs-root", str(root), "--specs", str(specs))
    lines = [" ".join(line.split()) for line in res.stdout.splitlines()]
    assert f"{original} alpha (smoke: 1 done)" in lines, res.stdout
    assert f"{copy} alpha (no stored runs; the runs named alpha here are {original}'s)" in lines, (
        res.stdout
    )


def test_the_cli_names_the_profiles_the_spec_schema_has() -> None:
    """harness.cli keeps its own copy of the profile names (it must not import harness.spec, which
    imports torch, before it answers --help): the copy is the schema's."""
    from harness import cli, spec

    assert cli.PROFILES == spec.PROFILES


def test_every_command_exits_quietly_into_a_closed_pipe(tmp_path: Path) -> None:
    """`python -m harness CMD | head`: the reader is gone before anything is written (deterministic:
    the pipe's read end is closed first); every command exits 0 or 141 and prints nothing. Commands
    that compute (run, search, replicate, tokenize, reset, env) are driven through their --help."""
    import os

    from harness.cli import parser

    sys.path.insert(0, str(ROOT / "tests" / "harness"))
    from harness_fixtures import tiny_spec

    from harness.store import write_manifest

    spec = tiny_spec(tmp_path / "s.yaml")
    root = tmp_path / "runs"
    ids = [f"r{i:02d}" for i in range(40)]
    for i, rid in enumerate(ids):
        write_result(
            root,
            run_dir(root, "tiny", "default", rid),
            RunResult(
                run_id=rid,
                spec="tiny",
                profile="default",
                arm=f"a{i % 3}",
                seed=i,
                state=RunState.DONE,
                metrics={"alignment": 0.01 * i},
            ),
        )
    write_manifest(root, "tiny", "default", ids, str(spec))
    at = ["--runs-root", str(root)]
    reads = {
        "validate": [str(spec)],
        "status": [str(spec), *at],
        "ls": ["--specs", str(tmp_path), *at],
        "report": [str(spec), *at, "--reports-dir", str(tmp_path / "reports")],
        "reindex": at,
        "plugins": [],
        "check": [str(spec), *at, "--update-baseline", "--baseline", str(tmp_path / "b.json")],
        "plan": [str(spec), *at, "--effect", "0.1"],
    }
    commands = [c for a in parser()._actions if a.dest == "command" for c in a.choices]
    cases = [["--version"], ["--help"]] + [
        [c, *reads[c]] if c in reads else [c, "--help"] for c in commands
    ]
    for args in cases:
        r, w = os.pipe()
        os.close(r)
        res = subprocess.run(
            [sys.executable, "-m", "harness", *args],
            cwd=ROOT,
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
        os.close(w)
        if (
            res.returncode == 2
        ):  # a command that refuses this store says so; that is not the pipe's doing
            assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, (
                args,
                res.stderr,
            )
            continue
        assert res.returncode in (0, 141) and res.stderr == "", (args, res.returncode, res.stderr)


def test_run_on_a_scratch_runs_root_refuses_before_running_to_overwrite_anothers_report(
    tmp_path: Path,
) -> None:
    """A report folder that holds the report of the same spec file on another (existing) runs root:
    `run` says so before it runs anything; --no-report runs."""
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase:\n  benchmark: {name: shapes}\n  score: {which: [alignment]}\n")
    main_root, scratch, reports = tmp_path / "runs", tmp_path / "scratch", tmp_path / "reports"
    out = reports / "s" / "default"
    out.mkdir(parents=True)
    main_root.mkdir()
    (out / "source.json").write_text(
        json.dumps({"spec": "../../../s.yaml", "runs_root": "../../../runs"})
    )
    res = harness(
        "run",
        str(spec),
        "--runs-root",
        str(scratch),
        "--reports-dir",
        str(reports),
        "--no-progress",
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"holds the report of spec file {spec} on runs root {main_root}" in res.stderr, (
        res.stderr
    )
    assert "--no-report" in res.stderr and not scratch.exists(), "refused before any run"
