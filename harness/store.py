"""Run store: run directories, atomic writes, result files and the SQLite results index.

Layout (the results contract): `<runs_root>/<spec>/<profile>/<run_id>/` holds `config.json`,
`stages/<stage>/...` (with a `done.json` marker once the stage finished) and `result.json`;
`<runs_root>/<spec>/<profile>/manifest.json` lists the run ids of the latest expansion and
`<runs_root>/index.sqlite` (table `runs`) indexes every run of every spec. result.json is the
source of truth; the index is rebuilt from it on every write of that run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then os.replace (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


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


def read_result(rdir: Path) -> dict[str, Any] | None:
    try:
        return read_json(rdir / "result.json")
    except (FileNotFoundError, json.JSONDecodeError):
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


def index_result(runs_root: str | Path, result: dict[str, Any], rdir: Path) -> None:
    """Upsert one result into `<runs_root>/index.sqlite`."""
    row = (result["spec"], result["profile"], result["run_id"], result.get("arm"), result.get("seed"),
           result.get("state"), json.dumps(result.get("params", {}), default=str),
           json.dumps(result.get("metrics", {})), (result.get("error") or {}).get("message"), str(rdir), time.time())
    with closing(_connect(runs_root)) as con, con:
        con.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)


def write_result(runs_root: str | Path, rdir: Path, result: dict[str, Any]) -> None:
    """Atomically write result.json, then index it."""
    atomic_write_json(rdir / "result.json", result)
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

def write_manifest(runs_root: str | Path, spec: str, profile: str, run_ids: list[str]) -> None:
    """Record which runs make up the latest expansion of spec+profile (older code versions drop out)."""
    path = profile_dir(runs_root, spec, profile) / "manifest.json"
    old = read_json(path)["run_ids"] if path.exists() else []
    atomic_write_json(path, {"run_ids": sorted(set(run_ids)), "previous": sorted(set(old) - set(run_ids))})


def add_to_manifest(runs_root: str | Path, spec: str, profile: str, run_ids: list[str]) -> None:
    path = profile_dir(runs_root, spec, profile) / "manifest.json"
    current = read_json(path)["run_ids"] if path.exists() else []
    write_manifest(runs_root, spec, profile, current + list(run_ids))


def load_results(runs_root: str | Path, spec_name: str, profile: str) -> pd.DataFrame:
    """One row per run of the latest expansion (plus reference rows).

    Columns: run_id, spec, profile, arm, seed, state, run_dir, error, then `param.<dotted key>`
    for every axis and `metric.<name>` for every metric (NaN where a run lacks it).
    """
    pdir = profile_dir(runs_root, spec_name, profile)
    manifest = pdir / "manifest.json"
    ids = read_json(manifest)["run_ids"] if manifest.exists() else sorted(p.name for p in pdir.glob("*") if p.is_dir())
    rows = []
    for rid in ids:
        res = read_result(pdir / rid)
        if res is None:
            continue
        row = {k: res.get(k) for k in ("run_id", "spec", "profile", "arm", "seed", "state")}
        row["run_dir"] = str(pdir / rid)
        row["error"] = (res.get("error") or {}).get("message")
        row.update({f"param.{k}": v for k, v in res.get("params", {}).items()})
        row.update({f"metric.{k}": v for k, v in res.get("metrics", {}).items()})
        if "trial" in res:
            row["trial"] = res["trial"]
        rows.append(row)
    base = ["run_id", "spec", "profile", "arm", "seed", "state", "run_dir", "error"]
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
