"""The SQLite results index `<runs_root>/index.sqlite` (table `runs`): updated on every write of a
result, reconciled with the result files of a spec+profile by every `run`, rebuilt by
`python -m harness reindex`; a corrupt index is moved aside (`index.sqlite.corrupt-<time>`) and
rebuilt where it is found. result.json stays the source of truth."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from harness.records import RunResult
from harness.store.files import warn
from harness.store.layout import profile_dir, run_dirs
from harness.store.results import read_result

INDEX = "index.sqlite"

_SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    spec TEXT NOT NULL, profile TEXT NOT NULL, run_id TEXT NOT NULL, arm TEXT, seed INTEGER,
    state TEXT, params TEXT, metrics TEXT, error TEXT, run_dir TEXT, updated REAL,
    PRIMARY KEY (spec, profile, run_id))"""

_COLUMNS = [
    "spec",
    "profile",
    "run_id",
    "arm",
    "seed",
    "state",
    "params",
    "metrics",
    "error",
    "run_dir",
    "updated",
]


def _connect(runs_root: str | Path) -> sqlite3.Connection:
    Path(runs_root).mkdir(parents=True, exist_ok=True)
    path = Path(runs_root) / INDEX
    if not path.exists():  # SQLite makes 0644 whatever the umask: 0666 less the umask, as elsewhere
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o666))
    con = sqlite3.connect(path, timeout=60.0)
    try:
        con.execute("PRAGMA busy_timeout = 60000")  # several worker processes write concurrently
        con.execute("PRAGMA journal_mode = WAL")
        con.execute(_SCHEMA)
    except BaseException:
        con.close()
        raise
    return con


def _corrupt(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and any(
        s in msg for s in ("not a database", "malformed", "corrupt", "unsupported file format")
    )


def _index_healthy(runs_root: Path) -> bool:
    try:
        with closing(_connect(runs_root)) as con:
            return con.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    except sqlite3.DatabaseError as exc:
        if _corrupt(exc):
            return False
        raise


@contextmanager
def _index_guard(runs_root: Path) -> Iterator[None]:
    """Serialise index repairs between processes."""
    runs_root.mkdir(parents=True, exist_ok=True)
    with open(runs_root / ".index.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _recover_index(runs_root: Path, exc: BaseException) -> None:
    """Move a corrupt index aside (index.sqlite.corrupt-<time>, with its -wal / -shm) and rebuild it."""
    with _index_guard(runs_root):
        if _index_healthy(runs_root):  # another process repaired it meanwhile
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = runs_root / f"{INDEX}.corrupt-{stamp}-{os.getpid()}"
        for suffix in ("", "-wal", "-shm"):
            src = runs_root / f"{INDEX}{suffix}"
            if src.exists():
                os.replace(src, Path(f"{aside}{suffix}"))
        n = _rebuild(runs_root)
    warn(
        f"{runs_root / INDEX}: corrupt ({exc}); moved to {aside.name} and rebuilt from {n} result.json files"
    )


def _index_op(runs_root: str | Path, op: Callable[[sqlite3.Connection], Any]) -> Any:
    """op(connection), repairing a corrupt index once (moved aside, rebuilt) and retrying. A busy
    database is retried for up to ~30 s: switching to WAL takes a lock that SQLite does not wait
    for, so concurrent first writers can get "database is locked" at once despite busy_timeout."""
    runs_root = Path(runs_root)
    repaired, deadline = False, time.monotonic() + 30.0
    while True:
        try:
            with closing(_connect(runs_root)) as con:
                return op(con)
        except sqlite3.OperationalError as exc:
            busy = any(s in str(exc).lower() for s in ("locked", "busy"))
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except sqlite3.DatabaseError as exc:
            if repaired or not _corrupt(exc):
                raise
            _recover_index(runs_root, exc)
            repaired = True


def _row(result: RunResult, rdir: Path) -> tuple:
    return (
        result.spec,
        result.profile,
        result.run_id,
        result.arm,
        result.seed,
        result.state.value,
        json.dumps(result.params, default=str),
        json.dumps(result.metrics),
        (result.error or {}).get("message"),
        str(rdir),
        time.time(),
    )


def index_result(runs_root: str | Path, result: RunResult, rdir: Path) -> None:
    """Upsert one result into `<runs_root>/index.sqlite`."""
    row = _row(result, rdir)

    def op(con: sqlite3.Connection) -> None:
        with con:
            con.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)

    _index_op(runs_root, op)


def _rebuild(runs_root: Path) -> int:
    rows = [_row(r, d) for d in run_dirs(runs_root) if (r := read_result(d)) is not None]

    def op(con: sqlite3.Connection) -> None:
        with con:
            con.execute("DELETE FROM runs")
            con.executemany("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)

    with closing(_connect(runs_root)) as con:
        op(con)
    return len(rows)


def reindex(runs_root: str | Path) -> int:
    """Rebuild index.sqlite from every result.json under the runs root (a corrupt index is moved
    aside first); returns the number of runs indexed."""
    runs_root = Path(runs_root)
    with _index_guard(runs_root):
        healthy = True
        try:
            healthy = _index_healthy(runs_root)
        except sqlite3.DatabaseError:
            healthy = False
        if not healthy:
            aside = runs_root / f"{INDEX}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            for suffix in ("", "-wal", "-shm"):
                if (runs_root / f"{INDEX}{suffix}").exists():
                    os.replace(runs_root / f"{INDEX}{suffix}", Path(f"{aside}{suffix}"))
            warn(f"{runs_root / INDEX}: corrupt; moved to {aside.name}")
        return _rebuild(runs_root)


def reconcile_index(runs_root: str | Path, spec: str, profile: str) -> int:
    """Make the index rows of spec+profile say what the run directories' result.json say (a kill
    between result.json and the index write, a deleted or rebuilt index, a removed run directory);
    returns the number of rows fixed."""
    runs_root = Path(runs_root)
    pdir = profile_dir(runs_root, spec, profile)
    disk = {}
    for rdir in sorted(pdir.iterdir()) if pdir.is_dir() else []:
        if rdir.is_dir() and not rdir.name.startswith(("_", ".")):
            res = read_result(rdir)
            if res is not None:
                disk[res.run_id] = _row(res, rdir)

    def op(con: sqlite3.Connection) -> int:
        have = {
            r[2]: r
            for r in con.execute(
                "SELECT * FROM runs WHERE spec = ? AND profile = ?", (spec, profile)
            )
        }
        upsert = [
            row for rid, row in disk.items() if rid not in have or tuple(have[rid][:10]) != row[:10]
        ]
        gone = [
            rid for rid, row in have.items() if rid not in disk and not Path(row[9] or "").is_dir()
        ]
        with con:
            con.executemany("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", upsert)
            con.executemany(
                "DELETE FROM runs WHERE spec = ? AND profile = ? AND run_id = ?",
                [(spec, profile, rid) for rid in gone],
            )
        return len(upsert) + len(gone)

    return _index_op(runs_root, op)


def remove_from_index(runs_root: str | Path, spec: str, profile: str, run_id: str) -> None:
    def op(con: sqlite3.Connection) -> None:
        with con:
            con.execute(
                "DELETE FROM runs WHERE spec = ? AND profile = ? AND run_id = ?",
                (spec, profile, run_id),
            )

    if (Path(runs_root) / INDEX).exists():
        _index_op(runs_root, op)


def query_index(
    runs_root: str | Path, spec: str | None = None, profile: str | None = None
) -> pd.DataFrame:
    """Rows of the index (all specs, or one spec / profile)."""
    if not (Path(runs_root) / INDEX).exists():
        return pd.DataFrame(columns=_COLUMNS)
    where, args = [], []
    for col, val in (("spec", spec), ("profile", profile)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    sql = (
        "SELECT * FROM runs"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY spec, profile, arm, seed"
    )
    return _index_op(runs_root, lambda con: pd.read_sql_query(sql, con, params=args))
