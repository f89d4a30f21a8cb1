"""`python -m harness {run,search,validate,report,check,status,plan,replicate,findings,ls,reindex,
reset,tokenize,plugins,env}`.

run, report, status and check all take --profile and --runs-root, so a report or a check reads
exactly the runs that `run` made. Exit codes: 0 ok, 1 a run failed / a check regressed,
2 a spec or argument error, or a file the command needs that cannot be read or written (printed
as one paragraph, no traceback), 130 interrupted (Ctrl-C or SIGTERM; the runs it stopped are recorded as
interrupted and resume on the next `run`), 141 the reader of stdout went away (`| head`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # harness.spec imports torch (TrainConfig): kept out of the CLI's start
    from harness.records import RunResult
    from harness.spec import Spec

PROFILES = ("smoke", "ci", "default", "full")  # harness.spec.PROFILES (a test keeps them equal)


def _common(p: argparse.ArgumentParser, runs: bool = True) -> None:
    p.add_argument("spec", help="ablation spec YAML")
    p.add_argument(
        "--profile",
        metavar="PROFILE",
        help="which of the spec's profiles (default: default; smoke: seconds, a plumbing "
        "check; ci: minutes, the regression gate's runs)",
    )
    if runs:
        p.add_argument(
            "--runs-root", default="runs", type=Path, help="run store root (default: runs/)"
        )


class _Version(argparse.Action):
    """`--version`, computed only when asked (it reads git)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the package version and commit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(_version())
        parser.exit()


def _version() -> str:
    """ "ursa-bench <package version> (<commit>)": what `--version` prints."""
    from harness.identity import code_version

    code = code_version()
    dirty = "+dirty" if code["dirty"] else ""
    return f"ursa-bench {code['package']} ({str(code['commit'])[:10]}{dirty})"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action=_Version)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every missing stage of every run of a spec, then report")
    _common(run)
    run.add_argument(
        "--executor", help="override executor.kind (inprocess, local, slurm or a registered one)"
    )
    run.add_argument("--max-parallel", type=int, help="override executor.max_parallel")
    run.add_argument(
        "--retry-failed", action="store_true", help="rerun runs whose last attempt failed"
    )
    run.add_argument(
        "--force", action="store_true", help="delete and recompute every run of the spec"
    )
    run.add_argument(
        "--storage", help="Optuna storage URL for search: blocks (e.g. postgresql://...)"
    )
    run.add_argument(
        "--no-report", action="store_true", help="do not render the report when the runs end"
    )
    run.add_argument(
        "--no-progress", action="store_true", help="no progress bar or [progress] lines"
    )
    run.add_argument(
        "--reports-dir",
        type=Path,
        default=Path("reports"),
        help="reports go to <dir>/<spec>/<profile>/ (default: reports/)",
    )
    srch = sub.add_parser(
        "search",
        help="be one worker of a spec's search: block (no grid, no reference "
        "runs); start several against one --storage to share the study",
    )
    _common(srch)
    srch.add_argument(
        "--executor", help="override executor.kind (inprocess, local, slurm or a registered one)"
    )
    srch.add_argument("--max-parallel", type=int, help="override executor.max_parallel")
    srch.add_argument(
        "--retry-failed", action="store_true", help="rerun runs whose last attempt failed"
    )
    srch.add_argument("--storage", help="Optuna storage URL (default: SQLite in the run store)")
    srch.add_argument(
        "--no-progress", action="store_true", help="no progress bar or [progress] lines"
    )
    val = sub.add_parser("validate", help="validate a spec (no compute) and print its run count")
    _common(val, runs=False)
    val.add_argument(
        "--show",
        action="store_true",
        help="also print every arm and seed, and the resolved config of the first run (YAML)",
    )
    rep = sub.add_parser(
        "report", help="render reports/<spec>/<profile>/report.md, report.html, results.csv"
    )
    _common(rep)
    rep.add_argument(
        "--reports-dir",
        type=Path,
        default=Path("reports"),
        help="reports go to <dir>/<spec>/<profile>/ (default: reports/)",
    )
    chk = sub.add_parser("check", help="compare the latest results with a baseline")
    _common(chk)
    chk.add_argument(
        "--baseline",
        type=Path,
        required=True,
        help="baseline JSON (as written by --update-baseline), e.g. reports/baselines/path_shape.json",
    )
    chk.add_argument(
        "--tolerance", type=float, default=None, help="relative tolerance (default: the checker's)"
    )
    chk.add_argument(
        "--update-baseline",
        action="store_true",
        help="write the current results as the new baseline instead of comparing",
    )
    st = sub.add_parser("status", help="runs of a spec: states, stages, key metrics")
    _common(st)
    pln = sub.add_parser(
        "plan",
        help="seeds (and prompts) each test of the verdict needs to "
        "detect an effect, from the variance of a pilot run",
    )
    _common(pln)
    pln.add_argument(
        "--effect", type=float, required=True, help="the true difference to detect (metric units)"
    )
    pln.add_argument("--prompts", type=int, help="also plan for this many prompts per seed")
    rpl = sub.add_parser(
        "replicate",
        help="rerun a spec on fresh seeds into runs of its "
        "own (<spec>.replicate); does each claim replicate?",
    )
    _common(rpl)
    rpl.add_argument(
        "--seeds",
        required=True,
        help="fresh seeds, e.g. 11-15 or 11,12,20 (none the original uses)",
    )
    rpl.add_argument(
        "--executor", help="override executor.kind (inprocess, local, slurm or a registered one)"
    )
    rpl.add_argument("--max-parallel", type=int, help="override executor.max_parallel")
    rpl.add_argument(
        "--no-progress", action="store_true", help="no progress bar or [progress] lines"
    )
    rpl.add_argument(
        "--reports-dir",
        type=Path,
        default=Path("reports"),
        help="the original's report, with the agreement, goes to "
        "<dir>/<spec>/<profile>/ (default: reports/)",
    )
    fnd = sub.add_parser(
        "findings",
        help="reports/FINDINGS.md and .html: each claim of the paper's "
        "ablation study against its spec's committed report",
    )
    fnd.add_argument(
        "--claims",
        type=Path,
        default=Path("ablations/claims/paper.yaml"),
        help="the claims file (default: ablations/claims/paper.yaml)",
    )
    fnd.add_argument(
        "--reports-dir",
        type=Path,
        default=Path("reports"),
        help="reads <dir>/<spec>/<profile>/verdict.json, writes <dir>/FINDINGS.md "
        "(default: reports/)",
    )
    fnd.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when FINDINGS.md is older than a report it summarises",
    )
    sub.add_parser(
        "env",
        add_help=False,
        help="create an evaluator's separate environment "
        "(python -m harness env NAME; see python -m harness env --help)",
    )
    ls = sub.add_parser(
        "ls", help="the spec files under --specs and the runs each has in the run store"
    )
    ls.add_argument(
        "--runs-root", default="runs", type=Path, help="run store root (default: runs/)"
    )
    ls.add_argument(
        "--specs",
        default="ablations",
        type=Path,
        help="folder searched (recursively) for spec files (default: ablations/)",
    )
    rix = sub.add_parser(
        "reindex",
        help="rebuild <runs-root>/index.sqlite from every result.json (a corrupt "
        "index is moved aside first)",
    )
    rix.add_argument(
        "--runs-root", default="runs", type=Path, help="run store root (default: runs/)"
    )
    rst = sub.add_parser(
        "reset",
        help="delete one run's directory (and the shared stage outputs only it uses) "
        "so the next `run` recomputes it",
    )
    _common(rst)
    rst.add_argument(
        "--run", required=True, metavar="RUN_ID", help="the run id (or a unique prefix of it)"
    )
    tok = sub.add_parser(
        "tokenize",
        help="pre-tokenise the training data of every data config of a spec into "
        "token shards (benchmarks that stream; resumable)",
    )
    _common(tok)
    tok.add_argument("--workers", type=int, help="decode threads (default: min(4, CPUs))")
    tok.add_argument("--device", help="encode on this device (default: the spec's train.device)")
    tok.add_argument("--no-progress", action="store_true", help="no progress bar")
    plg = sub.add_parser(
        "plugins",
        help="registered benchmarks, tokenizers, scorers, tasks and executors, "
        "with their options and defaults",
    )
    plg.add_argument(
        "spec", nargs="?", help="also import the modules this spec names under plugins:"
    )
    return ap


def load_spec(args: argparse.Namespace) -> Spec:
    """The spec of `args.spec`, with `args.profile` checked against its profiles: an unknown name is
    an error naming them; a known one the spec does not define runs the base settings, with a
    note."""
    from harness.specfile import load_spec as load

    spec = load(args.spec)
    profile = getattr(args, "profile", None)
    defined = ", ".join(spec.profiles) or "none"
    if profile is not None and profile not in PROFILES:
        raise ValueError(
            f"--profile {profile!r}: expected one of {', '.join(PROFILES)}; {args.spec} "
            f"defines profiles: {defined}"
        )
    if profile is not None and profile != "default" and profile not in spec.profiles:
        print(
            f"note: {args.spec} defines no profile {profile!r} (it defines: {defined}); "
            f"profile {profile} runs the spec's base settings",
            file=sys.stderr,
        )
    if hasattr(args, "profile") and profile is None:
        args.profile = "default"
    return spec


def _validate(args: argparse.Namespace) -> int:
    """Everything `run` would check, no compute: prints the runs `run` makes (grid x zip x seeds, plus
    one reference run per reference generator of the benchmark and data set, as harness.runner.plan
    makes them)."""
    from harness.expand import apply_profile, expand
    from harness.plugins import BENCHMARKS
    from harness.runner import reference_data_sets

    start = time.perf_counter()
    spec = load_spec(args)
    runs = expand(spec, args.profile)
    resolved, _ = apply_profile(spec, args.profile)
    sets = len(reference_data_sets(spec, args.profile))
    references = len(BENCHMARKS.get(resolved.base.benchmark.name).references) * sets
    per_set = f" ({sets} data sets)" if sets > 1 else ""
    refs = f" + {references} reference{'s' * (references != 1)}{per_set}" if references else ""
    trials = f" + {resolved.search.n_trials} search trials" if resolved.search else ""
    print(
        f"{args.spec}: OK ({spec.name}, profile {args.profile}: {len(runs)} run{'s' * (len(runs) != 1)}{refs}, "
        f"{trained_models(runs)} trained models{trials}; {time.perf_counter() - start:.2f} s)"
    )
    bench = BENCHMARKS.get(resolved.base.benchmark.name)
    data = bench.describe_data(bench.Options.model_validate(runs[0].config.benchmark.options()))
    if data:
        print(f"  data: {data}")
    if args.show:
        import yaml

        width = max(len(r.arm) for r in runs)
        print(f"\n{'arm'.ljust(width)}  seed")
        for r in runs:
            print(f"{r.arm.ljust(width)}  {r.seed}")
        print(f"\nresolved config of the first run ({runs[0].arm}, seed {runs[0].seed}):")
        print(yaml.safe_dump(runs[0].config.model_dump(mode="json"), sort_keys=False).rstrip())
    return 0


def trained_models(runs: list) -> int:
    """How many distinct models the runs train (arms differing only in sampling or scoring share one)."""
    from harness.identity import STAGE_SECTIONS, canonical_json

    return len(
        {
            canonical_json(
                {k: r.config.model_dump(mode="json")[k] for k in STAGE_SECTIONS["train"]}
            )
            for r in runs
        }
    )


def _report(spec: Spec, args: argparse.Namespace) -> Path:
    from harness.report import render_report

    return render_report(
        spec, args.runs_root, args.profile, args.reports_dir / spec.name / args.profile
    )


def _run(args: argparse.Namespace) -> int:
    from harness.runner import run_spec

    spec = load_spec(args)
    if not args.no_report:  # refused before the runs, not after them
        from harness.report import report_owner_error

        problem = report_owner_error(
            args.reports_dir / spec.name / args.profile, spec, args.runs_root
        )
        if problem:
            raise ValueError(f"{problem} (or pass --no-report)")
    start = time.perf_counter()
    outcome = run_spec(
        spec,
        args.profile,
        args.runs_root,
        executor_kind=args.executor,
        max_parallel=args.max_parallel,
        retry_failed=args.retry_failed,
        force=args.force,
        progress=not args.no_progress,
    )
    results = list(outcome.results)
    if spec.search is not None:
        results += _search_trials(spec, args)
        results = list({r.run_id: r for r in results}.values())  # a trial may reuse a grid run
    failed = [r for r in results if not r.done]
    print(
        f"{spec.name}/{args.profile}: {len(results) - len(failed)} done, {len(failed)} not done, "
        f"{outcome.computed} dispatched, {time.perf_counter() - start:.1f} s"
    )
    for r in failed:
        print(
            f"  {r.state}: {r.arm} seed={r.seed} {r.run_id}: {(r.error or {}).get('message', '')}",
            file=sys.stderr,
        )
    if not args.no_report:
        print(f"report: {_report(spec, args)}")
    return 1 if failed else 0


def _search_trials(spec: Spec, args: argparse.Namespace) -> list[RunResult]:
    """Run this worker's share of the spec's Optuna study; the results of its trials' runs."""
    from harness.expand import apply_profile
    from harness.search import run_search

    resolved, _ = apply_profile(spec, args.profile)
    executor = resolved.executor.model_copy(update={"kind": args.executor} if args.executor else {})
    return run_search(
        spec,
        args.runs_root,
        args.profile,
        args.storage,
        executor,
        max_parallel=args.max_parallel,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
    )


def _search(args: argparse.Namespace) -> int:
    spec = load_spec(args)
    if spec.search is None:
        raise ValueError(
            f"{args.spec}: expected a spec with a 'search:' block for `search`, got none"
        )
    results = _search_trials(spec, args)
    failed = [r for r in results if not r.done]
    print(
        f"{spec.name}/{args.profile} search worker: {len(results)} trial runs, {len(failed)} not done"
    )
    return 1 if failed else 0


def _check(args: argparse.Namespace) -> int:
    from harness.regression_gate import check

    spec = load_spec(args)
    return check(
        spec, args.runs_root, args.profile, args.baseline, args.tolerance, args.update_baseline
    )


def _plan(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.plan import plan_table

    if not (args.effect > 0 and args.effect < float("inf")):
        raise ValueError(f"--effect: expected a difference > 0 to detect, got {args.effect!r}")
    if args.prompts is not None and args.prompts < 2:
        raise ValueError(f"--prompts: expected at least 2 prompts, got {args.prompts}")
    spec = load_spec(args)
    table, note = plan_table(spec, args.runs_root, args.profile, args.effect, args.prompts)
    print(note)
    with pd.option_context(
        "display.width", 250, "display.max_columns", 20, "display.max_colwidth", 80
    ):
        print(table.to_string(index=False))
    return 0


def _replicate(args: argparse.Namespace) -> int:
    from harness.replicate import parse_seeds, replicate_spec
    from harness.report import replicate_blocks
    from harness.runner import run_spec
    from harness.store import load_results

    spec = load_spec(args)
    rep = replicate_spec(spec, args.profile, parse_seeds(args.seeds))
    outcome = run_spec(
        rep,
        args.profile,
        args.runs_root,
        executor_kind=args.executor,
        max_parallel=args.max_parallel,
        progress=not args.no_progress,
    )
    failed = [r for r in outcome.results if not r.done]
    done = len(outcome.results) - len(failed)
    print(f"{rep.name}/{args.profile}: {done} done, {len(failed)} not done")
    if load_results(args.runs_root, spec.name, args.profile).empty:
        print(
            f"no runs of the original {spec.name!r} (profile {args.profile}) under "
            f"{args.runs_root}: run `python -m harness run {args.spec} --profile {args.profile} "
            f"--runs-root {args.runs_root}` to compare with it"
        )
    else:
        report = _report(spec, args)
        for block in replicate_blocks(
            spec,
            args.runs_root,
            args.profile,
            load_results(args.runs_root, spec.name, args.profile),
            _verdict_of(spec, args),
        ):
            print(block.text if block.table is None else block.table.to_string(index=False))
        print(f"report: {report}")
    return 1 if failed else 0


def _findings(args: argparse.Namespace) -> int:
    from harness.findings import findings, stale, write_findings

    if args.check:
        lines = stale(args.claims, args.reports_dir)
        print("\n".join(lines) if lines else f"{args.reports_dir / 'FINDINGS.md'}: current")
        return 1 if lines else 0
    rows = findings(args.claims, args.reports_dir)
    path = write_findings(rows, args.reports_dir, args.claims)
    for r in rows:
        print(f"{r.verdict:>12}  {r.claim.claim}")
    print(f"findings: {path} ({path.with_suffix('.html').name} beside it)")
    return 0


def _verdict_of(spec: Spec, args: argparse.Namespace):
    from harness.report import verdict, with_derived
    from harness.store import load_results

    return verdict(spec, with_derived(load_results(args.runs_root, spec.name, args.profile))[0])


def _status(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.regression_gate import require_runs
    from harness.store import load_results, stage_done

    spec = load_spec(args)
    df = load_results(args.runs_root, spec.name, args.profile)
    require_runs(df, spec, args.runs_root, args.profile)
    df["stages"] = [
        ",".join(s for s in ("train", "sample", "score", "reference") if stage_done(Path(d), s))
        for d in df["run_dir"]
    ]
    from harness import progress

    live = [
        progress.read(d) if state == "running" else None
        for d, state in zip(df["run_dir"], df["state"])
    ]
    df["progress"] = [progress.describe(p) if p else "" for p in live]
    metrics = [c for c in df.columns if c.startswith("metric.")][:4]
    cols = [
        "arm",
        "seed",
        "state",
        "stages",
        *(["progress"] if any(live) else []),
        "run_id",
        *metrics,
    ]
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.max_colwidth", 40
    ):
        print(df[cols].to_string(index=False))
    print(df["state"].value_counts().to_string())
    return 0


def _ls(args: argparse.Namespace) -> int:
    from harness.store import INDEX, query_index, reindex

    idx = query_index(args.runs_root)  # a corrupt index is moved aside and rebuilt here
    files = sum(
        1 for p in args.runs_root.glob("*/*/*/result.json") if not p.parts[-4].startswith("_")
    )
    if len(idx) != files:  # a deleted, emptied or stale index: rebuilt from the result files
        what = (
            "missing" if not (args.runs_root / INDEX).exists() else f"out of date ({len(idx)} rows)"
        )
        n = reindex(args.runs_root)
        print(
            f"{args.runs_root / INDEX}: {what}; rebuilt from {n} result.json files", file=sys.stderr
        )
        idx = query_index(args.runs_root)
    spec_files = _spec_files(args.specs)
    if spec_files:
        print(f"spec files under {args.specs}/:")
        width = max(len(str(p)) for p in spec_files)
        owners = _owners(args.runs_root, idx)
        for path, name in spec_files.items():
            mine = idx[idx["spec"] == name] if not idx.empty else idx
            groups = [
                (prof, g)
                for prof, g in mine.groupby("profile")  # runs of this file only
                if owners.get((name, prof)) in (None, os.path.abspath(path))
            ]
            others = sorted(
                {
                    owners[(name, prof)]
                    for prof, _ in mine.groupby("profile")
                    if owners.get((name, prof)) not in (None, os.path.abspath(path))
                }
            )
            stored = (
                "; ".join(
                    f"{prof}: "
                    + ", ".join(f"{n} {state}" for state, n in g["state"].value_counts().items())
                    for prof, g in groups
                )
                or "no stored runs"
            )
            stored += "".join(f"; the runs named {name} here are {o}'s" for o in others)
            print(f"  {str(path).ljust(width)}  {name}  ({stored})")
        print()
    if idx.empty:
        print(f"no runs under {args.runs_root}")
        return 0
    counts = idx.groupby(["spec", "profile", "state"]).size().unstack(fill_value=0)
    print(counts.to_string())
    return 0


def _owners(runs_root: Path, idx) -> dict[tuple[str, str], str | None]:
    """{(spec name, profile): the spec file whose runs they are} from each profile's manifest (None
    where a manifest names no file: a spec made in memory, or none written)."""
    from harness.store import profile_dir, read_json_or_none

    owners = {}
    for spec, profile in {*zip(idx["spec"], idx["profile"])} if len(idx) else set():
        manifest = read_json_or_none(
            profile_dir(runs_root, spec, profile) / "manifest.json", "its runs are listed"
        )
        source = manifest.get("source") if isinstance(manifest, dict) else None
        mine = isinstance(source, str) and not source.startswith("<")
        owners[(spec, profile)] = source if mine else None
    return owners


def _spec_files(folder: Path) -> dict[Path, str]:
    """{spec file: its `name:`} of the YAML files under `folder` (the file stem where a file cannot
    be read: `ls` lists, it does not validate); a readable mapping without `name:` is no spec (an
    included file such as ablations/shared/miniature.yaml, a claims file) and is left out."""
    from harness.specfile import load_yaml_text

    out = {}
    for path in (
        sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")]) if folder.is_dir() else []
    ):
        try:  # the spec loader's bounded YAML (no alias bombs), on at most a megabyte
            data = (
                load_yaml_text(path.read_text(), str(path))
                if path.stat().st_size < 1_000_000
                else None
            )
        except (OSError, ValueError, UnicodeDecodeError):  # SpecError is a ValueError
            data = None
        if isinstance(data, dict) and "name" not in data:
            continue
        name = data.get("name") if isinstance(data, dict) else None
        out[path] = name if isinstance(name, str) else path.stem
    return out


def _reindex(args: argparse.Namespace) -> int:
    from harness.store import INDEX, reindex

    n = reindex(args.runs_root)
    print(f"{args.runs_root / INDEX}: rebuilt from {n} result.json files")
    return 0


def _reset(args: argparse.Namespace) -> int:
    from harness.store import profile_dir, reset_run

    spec = load_spec(args)
    pdir = profile_dir(args.runs_root, spec.name, args.profile)
    ids = (
        sorted(
            p.name
            for p in pdir.iterdir()
            if p.is_dir() and not p.name.startswith("_") and p.name.startswith(args.run)
        )
        if pdir.is_dir()
        else []
    )
    if len(ids) != 1:
        found = f"{len(ids)} matches ({', '.join(ids[:5])})" if ids else "none"
        raise ValueError(
            f"--run {args.run!r}: expected the id (or a unique prefix) of one run of {spec.name!r} "
            f"(profile {args.profile}) under {pdir}, got {found}; `python -m harness status "
            f"{args.spec} --profile {args.profile} --runs-root {args.runs_root}` lists them"
        )
    deleted = reset_run(args.runs_root, spec.name, args.profile, ids[0])
    for path in deleted:
        print(f"deleted {path}")
    print(
        f"run {ids[0]} reset: the next `python -m harness run {args.spec} --profile {args.profile} "
        f"--runs-root {args.runs_root}` recomputes it"
    )
    return 0


def _tokenize(args: argparse.Namespace) -> int:
    from harness.token_shards import tokenize_spec

    return tokenize_spec(
        load_spec(args),
        args.profile,
        args.runs_root,
        workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
    )


def _plugins(args: argparse.Namespace) -> int:
    from harness.plugins import REGISTRIES, describe_registries

    if args.spec:
        load_spec(args)  # imports its plugins: modules
    print(describe_registries(REGISTRIES))
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code (the module's docstring lists them); a closed
    stdout is 141 and silent for every command."""
    code = _command(argv)
    try:
        sys.stdout.flush()  # what an error path left buffered: a closed pipe shows here, not at exit
    except BrokenPipeError:
        return _stdout_closed()
    return code


def _stdout_closed() -> int:
    """The reader of stdout left: send the rest to /dev/null (no second error when Python flushes
    stdout at exit) and exit as a tool killed by the broken pipe would."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 141  # 128 + SIGPIPE


def _command(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    handlers = {
        "run": _run,
        "search": _search,
        "validate": _validate,
        "report": lambda a: print(_report(load_spec(a), a)) or 0,
        "check": _check,
        "status": _status,
        "ls": _ls,
        "plugins": _plugins,
        "reindex": _reindex,
        "reset": _reset,
        "tokenize": _tokenize,
        "plan": _plan,
        "replicate": _replicate,
        "findings": _findings,
    }
    args, previous = None, None
    try:
        if argv[:1] == ["env"]:  # evaluator environments have their own parser (harness.env)
            from harness.env import main_env

            return main_env(argv[1:])
        args = parser().parse_args(argv)
        if (
            args.command in ("run", "search")
            and threading.current_thread() is threading.main_thread()
        ):
            previous = signal.signal(
                signal.SIGTERM, _interrupt
            )  # a `kill` or a scheduler's stop: as Ctrl-C
        root = getattr(args, "runs_root", None)
        if root is not None and root.exists() and not root.is_dir():
            raise ValueError(
                f"--runs-root {str(root)!r}: expected a directory (or a path to create one at), "
                f"got a file"
            )
        code = handlers[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except (
        ValueError
    ) as exc:  # a spec error or bad arguments (e.g. --tolerance), before any compute
        spec_error = getattr(sys.modules.get("harness.spec"), "SpecError", ())
        print(f"{'spec error' if isinstance(exc, spec_error) else 'error'}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`: the reader left; exit quietly
        return _stdout_closed()
    except KeyboardInterrupt as exc:  # also while torch imports: no import here, the one line only
        interrupted = getattr(sys.modules.get("harness.runner"), "Interrupted", ())

        where = ""
        if args is not None and getattr(args, "command", None) in ("run", "search"):
            profile = args.profile or "default"  # an interrupt before load_spec filled it in
            where = (
                f"; rerun `python -m harness {args.command} {args.spec} --profile {profile} "
                f"--runs-root {args.runs_root}` to resume"
            )
        if isinstance(exc, interrupted):
            print(
                f"interrupted: workers stopped, {len(exc.unfinished)} unfinished run(s) recorded as interrupted"
                f"{where}",
                file=sys.stderr,
            )
        else:
            print(f"interrupted{where}", file=sys.stderr)
        return 130
    except OSError as exc:  # a file or directory the command needs cannot be read or written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
