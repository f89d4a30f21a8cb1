"""Run store: run directories, atomic writes, result files and the SQLite results index.

Layout (the results contract): `<runs_root>/<spec>/<profile>/<run_id>/` holds `config.json`,
`stages/<stage>/...` (with a `done.json` marker once the stage finished) and `result.json`;
`<runs_root>/<spec>/<profile>/manifest.json` lists the run ids of the latest expansion and
`<runs_root>/index.sqlite` (table `runs`) indexes every run of every spec. result.json is the
source of truth; the index is rebuilt from it on every write of that run.

Stages that several runs share (a trained model, a set of samples) live once under
`<runs_root>/_stages/<stage>/<stage_id>/`; a run's `stages/train` and `stages/sample` are
relative symlinks to them, so every reader sees one run directory. A shared stage is computed
under an exclusive file lock, so two workers never compute it at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from harness.records import RunResult
from ursa.io import atomic_write_bytes, atomic_write_json


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def profile_dir(runs_root: str | Path, spec: str, profile: str) -> Path:
    return Path(runs_root) / spec / profile


def run_dir(runs_root: str | Path, spec: str, profile: str, run_id: str) -> Path:
    return profile_dir(runs_root, spec, profile) / run_id


def stage_dir(rdir: Path, stage: str) -> Path:
    return rdir / "stages" / stage


def stage_done(rdir: Path, stage: str) -> bool:
    return (stage_dir(rdir, stage) / "done.json").is_file()


def mark_stage_done(rdir: Path, stage: str, info: dict[str, Any] | None = None) -> None:
    atomic_write_json(stage_dir(rdir, stage) / "done.json", {"finished": time.time(), **(info or {})})


def shared_stage_dir(runs_root: str | Path, stage: str, stage_id: str) -> Path:
    return Path(runs_root) / "_stages" / stage / stage_id


def link_stage(rdir: Path, stage: str, target: Path) -> None:
    """Make rdir/stages/<stage> a relative symlink to the shared stage directory `target`."""
    target.mkdir(parents=True, exist_ok=True)
    link = stage_dir(rdir, stage)
    link.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(target, link.parent)
    if link.is_symlink() and os.readlink(link) == rel:
        return
    tmp = link.parent / f".{stage}.link.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(rel, target_is_directory=True)
    os.replace(tmp, link)  # atomic: a reader sees the old link or the new one


@contextmanager
def stage_lock(directory: Path) -> Iterator[None]:
    """Exclusive lock on a stage directory (blocks while another process computes that stage)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_result(rdir: Path) -> RunResult | None:
    try:
        return RunResult.from_json(read_json(rdir / "result.json"))
    except (FileNotFoundError, json.JSONDecodeError, TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- index

_SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    spec TEXT NOT NULL, profile TEXT NOT NULL, run_id TEXT NOT NULL, arm TEXT, seed INTEGER,
    state TEXT, params TEXT, metrics TEXT, error TEXT, run_dir TEXT, updated REAL,
    PRIMARY KEY (spec, profile, run_id))"""


def _connect(runs_root: str | Path) -> sqlite3.Connection:
    Path(runs_root).mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(Path(runs_root) / "index.sqlite", timeout=60.0)
    con.execute("PRAGMA busy_timeout = 60000")  # several worker processes write concurrently
    con.execute("PRAGMA journal_mode = WAL")
    con.execute(_SCHEMA)
    return con


def index_result(runs_root: str | Path, result: RunResult, rdir: Path) -> None:
    """Upsert one result into `<runs_root>/index.sqlite`."""
    row = (result.spec, result.profile, result.run_id, result.arm, result.seed, result.state.value,
           json.dumps(result.params, default=str), json.dumps(result.metrics), (result.error or {}).get("message"),
           str(rdir), time.time())
    with closing(_connect(runs_root)) as con, con:
        con.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)


def write_result(runs_root: str | Path, rdir: Path, result: RunResult) -> None:
    """Atomically write result.json, then index it."""
    atomic_write_json(rdir / "result.json", result.to_json())
    index_result(runs_root, result, rdir)


def query_index(runs_root: str | Path, spec: str | None = None, profile: str | None = None) -> pd.DataFrame:
    """Rows of the index (all specs, or one spec / profile)."""
    if not (Path(runs_root) / "index.sqlite").exists():
        return pd.DataFrame(columns=["spec", "profile", "run_id", "arm", "seed", "state", "params", "metrics",
                                     "error", "run_dir", "updated"])
    where, args = [], []
    for col, val in (("spec", spec), ("profile", profile)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY spec, profile, arm, seed"
    with closing(_connect(runs_root)) as con:
        return pd.read_sql_query(sql, con, params=args)


# ----------------------------------------------------------------------------- results

def check_owner(runs_root: str | Path, spec: str, profile: str, source: str) -> None:
    """ValueError when another spec file with the same `name:` already owns spec+profile here."""
    path = profile_dir(runs_root, spec, profile) / "manifest.json"
    owner = read_json(path).get("source") if path.exists() else None
    if owner is not None and owner != spec_source(source):
        raise ValueError(f"{source}: name: {spec!r} is already the name of spec file {owner!r} under runs root "
                         f"{runs_root} (profile {profile}); expected a name no other spec uses there. Rename one "
                         f"of them, or use another --runs-root.")


def spec_source(source: str) -> str:
    """The identity of a spec file in a manifest: its absolute path (a spec made in memory keeps its label)."""
    return source if source.startswith("<") else os.path.abspath(source)


def write_manifest(runs_root: str | Path, spec: str, profile: str, run_ids: list[str], source: str) -> None:
    """Record which runs make up the latest expansion of spec+profile (older code versions drop out)
    and which spec file they belong to."""
    check_owner(runs_root, spec, profile, source)
    path = profile_dir(runs_root, spec, profile) / "manifest.json"
    old = read_json(path)["run_ids"] if path.exists() else []
    atomic_write_json(path, {"run_ids": sorted(set(run_ids)), "previous": sorted(set(old) - set(run_ids)),
                             "source": spec_source(source)})


def add_to_manifest(runs_root: str | Path, spec: str, profile: str, run_ids: list[str], source: str) -> None:
    path = profile_dir(runs_root, spec, profile) / "manifest.json"
    current = read_json(path)["run_ids"] if path.exists() else []
    write_manifest(runs_root, spec, profile, current + list(run_ids), source)


def load_results(runs_root: str | Path, spec_name: str, profile: str) -> pd.DataFrame:
    """One row per run of the latest expansion (plus reference rows).

    Columns: run_id, spec, profile, arm, seed, state, reference, model (the train-stage id, shared
    by arms that reuse one trained model), run_dir, error, then `param.<dotted key>` for every
    axis and `metric.<name>` for every metric (NaN where a run lacks it).
    """
    pdir = profile_dir(runs_root, spec_name, profile)
    manifest = pdir / "manifest.json"
    ids = read_json(manifest)["run_ids"] if manifest.exists() else sorted(p.name for p in pdir.glob("*") if p.is_dir())
    rows = []
    for rid in ids:
        res = read_result(pdir / rid)
        if res is None:
            continue
        row = {"run_id": res.run_id, "spec": res.spec, "profile": res.profile, "arm": res.arm, "seed": res.seed,
               "state": res.state.value, "reference": res.reference, "model": res.stage_ids.get("train"),
               "run_dir": str(pdir / rid), "error": (res.error or {}).get("message")}
        row.update({f"param.{k}": v for k, v in res.params.items()})
        row.update({f"metric.{k}": v for k, v in res.metrics.items()})
        if res.trial is not None:
            row["trial"] = res.trial
        rows.append(row)
    base = ["run_id", "spec", "profile", "arm", "seed", "state", "reference", "model", "run_dir", "error"]
    df = pd.DataFrame(rows, columns=None if rows else base)
    rest = sorted(c for c in df.columns if c not in base)
    return df[base + rest].sort_values(["arm", "seed"], na_position="first", kind="stable").reset_index(drop=True)


def export_results(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a results table as .csv or .parquet (atomically)."""
    path = Path(path)
    if path.suffix == ".csv":
        atomic_write_bytes(path, df.to_csv(index=False).encode())
    elif path.suffix == ".parquet":
        atomic_write_bytes(path, df.to_parquet(index=False))
    else:
        raise ValueError(f"export path: expected a .csv or .parquet file, got {str(path)!r}")
    return path
