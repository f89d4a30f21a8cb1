"""Run store: run directories, atomic writes, result files, run ownership and the SQLite results index.

Layout (the results contract): `<runs_root>/<spec>/<profile>/<run_id>/` holds `config.json`,
`stages/<stage>/...` (with a `done.json` marker once the stage finished) and `result.json`;
`<runs_root>/<spec>/<profile>/manifest.json` lists the run ids of the latest expansion and
`<runs_root>/index.sqlite` (table `runs`) indexes every run of every spec. result.json is the
source of truth: the index is updated on every write of a result, reconciled with the result
files of a spec+profile by every `run`, rebuilt by `python -m harness reindex`, and a corrupt
index is moved aside (`index.sqlite.corrupt-<time>`) and rebuilt where it is found.

Stages that several runs share (a trained model, a set of samples) live once under
`<runs_root>/_stages/<stage>/<stage_id>/`; a run's `stages/train` and `stages/sample` are
relative symlinks to them, so every reader sees one run directory. A shared stage is computed
under an exclusive file lock, so two workers never compute it at once. A done marker records the
sha256 of the outputs it vouches for (`*.safetensors` and `*.json` of the stage, checkpoints
aside); a marker that is unreadable or whose files no longer match means "not done".

Every run has one owner: the process executing it holds an exclusive lock on
`<run_dir>/.owner` (pid and host written in it). Another process skips or waits for a run a live
process owns and takes over one whose owner died (the kernel releases the lock of a dead process).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import struct
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.records import RunResult
from ursa.io import atomic_write_bytes, atomic_write_json, is_temp_name, stale_temp, temp_tag, untagged_temp

INDEX = "index.sqlite"
OWNER = ".owner"
DONE = "done.json"


def warn(message: str) -> None:
    """One line on stderr (state the harness found damaged, repaired or could not record)."""
    print(message, file=sys.stderr, flush=True)


_WARNED: set[tuple] = set()


def _warn_damaged(path: Path, exc: BaseException | None, action: str, what: str = "unreadable") -> None:
    """Report a damaged file once per process and version of the file."""
    try:
        st = path.stat()
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, action)
    except OSError:
        key = (str(path), action)
    if key not in _WARNED:
        _WARNED.add(key)
        detail = "" if exc is None else f" ({type(exc).__name__}: {exc})"[:300] if str(exc) else f" ({type(exc).__name__})"
        warn(f"{path}: {what}{detail}; {action}")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def read_json_or_none(path: str | Path, action: str) -> Any | None:
    """The JSON in `path`; None when it is missing or damaged (not UTF-8, truncated, not JSON),
    a damaged file reported once with its path and `action` (what the harness does about it)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (ValueError, OSError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        _warn_damaged(path, exc, action)
        return None


def profile_dir(runs_root: str | Path, spec: str, profile: str) -> Path:
    return Path(runs_root) / spec / profile


def run_dir(runs_root: str | Path, spec: str, profile: str, run_id: str) -> Path:
    return profile_dir(runs_root, spec, profile) / run_id


def stage_dir(rdir: Path, stage: str) -> Path:
    return rdir / "stages" / stage


# ----------------------------------------------------------------------------- done markers

_SKIP_DIRS = {"checkpoint", "checkpoint.old"}  # training state, not an output a marker vouches for
_HASHES: dict[tuple, str] = {}


def _sha256(path: Path) -> str | None:
    """sha256 of a file (None if absent), cached per (path, inode, size, mtime)."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def stage_outputs(directory: Path) -> list[Path]:
    """The files a stage's done marker vouches for: its `*.safetensors` and `*.json` (the marker,
    hidden files and the training checkpoints aside), sorted."""
    out = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in files:
            if not name.startswith(".") and name != DONE and name.endswith((".safetensors", ".json")):
                out.append(Path(root) / name)
    return sorted(out)


def stage_done(rdir: Path, stage: str) -> bool:
    """Whether the stage finished: its marker is readable and every file it vouches for matches
    its checksum (a marker written before checksums were recorded vouches for none)."""
    directory = stage_dir(rdir, stage)
    marker = directory / DONE
    if not marker.is_file():
        return False
    info = read_json_or_none(marker, "the stage is recomputed")
    if not isinstance(info, dict):
        return False
    for rel, digest in (info.get("sha256") or {}).items():
        if _sha256(directory / rel) != digest:
            _warn_damaged(directory / rel, None, "the stage is recomputed",
                          what="damaged or missing (its sha256 differs from the one in done.json)")
            return False
    return True


def damaged_stages(rdir: Path, reference: bool) -> list[str]:
    """The stages of a finished run that no longer check out (done marker missing or unreadable,
    an output's sha256 differs, a stage link broken): the ones `run` recomputes, `report` flags.
    A run none of whose stages has a done marker (a result imported or written alone) has none to
    check."""
    stages = ("reference",) if reference else ("train", "sample", "score")
    if not any((stage_dir(rdir, s) / DONE).exists() for s in stages):
        return []
    return [s for s in stages if not stage_done(rdir, s)]


def mark_stage_done(rdir: Path, stage: str, info: dict[str, Any] | None = None) -> None:
    """Write the stage's done.json with the sha256 of every output it vouches for (stage_outputs)."""
    directory = stage_dir(rdir, stage)
    sums = {str(p.relative_to(directory)): _sha256(p) for p in stage_outputs(directory)}
    atomic_write_json(directory / DONE, {"finished": time.time(), **(info or {}), "sha256": sums})


def _safetensors_ok(path: Path) -> bool:
    """A safetensors file whose header parses and whose size matches the tensors it declares."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n > size - 8:
                return False
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return size == 8 + n + end
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return False


def invalidate_stage(rdir: Path, stage: str) -> list[Path]:
    """Before recomputing a stage that is not done (call under its lock): remove its outputs that
    are damaged, so only they are recomputed, and the marker. With a readable marker the damaged
    files are those whose checksum no longer matches; without one, safetensors files that are
    truncated and JSON files that do not parse. A damaged learning-curve snapshot can only be
    remade by training again, so it takes the training checkpoints with it. Returns what it removed."""
    directory = stage_dir(rdir, stage)
    marker = directory / DONE
    info = read_json_or_none(marker, "the stage is recomputed") if marker.is_file() else None
    sums = info.get("sha256") if isinstance(info, dict) else None
    removed = []
    for path in stage_outputs(directory) if directory.is_dir() else []:
        rel = str(path.relative_to(directory))
        if sums is not None and rel in sums:
            bad = _sha256(path) != sums[rel]
        elif path.suffix == ".safetensors":
            bad = not _safetensors_ok(path)
        else:
            bad = read_json_or_none(path, "recomputed") is None
        if bad:
            path.unlink(missing_ok=True)
            removed.append(path)
    if stage == "train" and any("snapshots" in p.relative_to(directory).parts for p in removed):
        for name in ("checkpoint", "checkpoint.old", "model"):
            shutil.rmtree(directory / name, ignore_errors=True)
            removed.append(directory / name)
    if removed:
        warn(f"{directory}: removed {len(removed)} damaged output(s) ({', '.join(p.name for p in removed[:4])}); "
             f"recomputing them")
    if marker.exists() or marker.is_symlink():
        marker.unlink(missing_ok=True)
    return removed


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
    tmp = link.parent / f".{stage}.link.{temp_tag()}.tmp"  # unique: two processes may link at once
    tmp.symlink_to(rel, target_is_directory=True)
    try:
        os.replace(tmp, link)  # atomic: a reader sees the old link or the new one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def stage_busy(directory: Path) -> bool:
    """Whether a process holds the stage lock of `directory` now."""
    try:
        fd = os.open(directory / ".lock", os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def sweep_temps(directory: Path, *, locked: bool, recursive: bool = True) -> list[Path]:
    """Remove the temp files and directories under `directory` (not following links; only its own
    entries unless `recursive`) that no live process owns (ursa.io.stale_temp); with `locked` (the
    caller holds the directory's run or stage lock) also untagged ones left by older code. Returns
    what it removed."""
    removed = []
    for root, dirs, files in os.walk(directory):
        if not recursive and Path(root) != Path(directory):
            break
        for name in [*files, *dirs]:
            path = Path(root) / name
            if is_temp_name(name) and (stale_temp(path) or (locked and untagged_temp(path))):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        dirs[:] = [d for d in dirs if not is_temp_name(d)]
    if removed:
        warn(f"{directory}: removed {len(removed)} stale temp file(s) left by killed processes "
             f"({', '.join(p.name for p in removed[:3])}{', ...' if len(removed) > 3 else ''})")
    return removed


# ----------------------------------------------------------------------------- run ownership

@dataclass(frozen=True)
class Owner:
    """Who holds a run: what its .owner file says (pid None when it could not be read)."""

    pid: int | None
    host: str

    def __str__(self) -> str:
        return f"pid {self.pid if self.pid is not None else '?'} on host {self.host}"


def _read_owner(path: Path) -> Owner:
    for _ in range(20):  # the holder writes its name just after taking the lock
        try:
            words = path.read_text(errors="replace").split()
        except OSError:
            words = []
        if words:
            break
        time.sleep(0.01)
    pid = int(words[0]) if words and words[0].isdigit() else None
    return Owner(pid, words[1] if len(words) > 1 else "?")


def owner_of(rdir: Path) -> Owner | None:
    """The live owner of the run in `rdir`, or None when no process holds it."""
    path = Path(rdir) / OWNER
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return _read_owner(path)
    finally:
        os.close(fd)


def wait_for_owner(rdir: Path) -> None:
    """Block until no process owns the run (returns at once when none does)."""
    try:
        fd = os.open(Path(rdir) / OWNER, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


class RunHold:
    """This process's ownership of a run (the exclusive lock on its .owner file); `waited` says
    whether another process owned it first. Released by `release()`, on exit of a `with`, or by
    the kernel when the process dies."""

    def __init__(self, path: Path, fd: int, waited: bool) -> None:
        self.path, self.fd, self.waited = path, fd, waited

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor releases the flock
            self.fd = None

    def __enter__(self) -> RunHold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_run(rdir: Path, *, wait: bool = True, on_wait: Callable[[Owner], None] | None = None) -> RunHold | None:
    """Own the run in `rdir`: take the exclusive lock on rdir/.owner and write this process's pid
    and host in it. When a live process owns it: with `wait`, call on_wait(owner) and block until
    it is released; without, return None."""
    path = Path(rdir) / OWNER
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            for attempt in range(10):  # a prober's brief shared lock is not an owner
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt < 9:
                        time.sleep(0.02)
            else:
                if not wait:
                    os.close(fd)
                    return None
                if on_wait is not None and not waited:
                    on_wait(_read_owner(path))
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:  # the file may have been deleted (reset) while this process waited: lock the new one
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                path.parent.mkdir(parents=True, exist_ok=True)
                continue
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {time.time():.0f}\n".encode(), 0)
            except OSError:
                pass  # a full disk: the lock holds without the name
            return RunHold(path, fd, waited)
        except BaseException:
            try:
                os.close(fd)
            except OSError:
                pass
            raise


# ----------------------------------------------------------------------------- results

def read_result(rdir: Path) -> RunResult | None:
    """The run's result.json; None when absent, or damaged (reported once with its path: the run is
    then treated as not done and recomputed from its stages)."""
    data = read_json_or_none(rdir / "result.json", "the run is treated as not done and resumed from its stages")
    if data is None:
        return None
    try:
        return RunResult.from_json(data)
    except (TypeError, ValueError, AttributeError) as exc:
        _warn_damaged(rdir / "result.json", exc, "the run is treated as not done and resumed from its stages")
        return None


# ----------------------------------------------------------------------------- index

_SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    spec TEXT NOT NULL, profile TEXT NOT NULL, run_id TEXT NOT NULL, arm TEXT, seed INTEGER,
    state TEXT, params TEXT, metrics TEXT, error TEXT, run_dir TEXT, updated REAL,
    PRIMARY KEY (spec, profile, run_id))"""
_COLUMNS = ["spec", "profile", "run_id", "arm", "seed", "state", "params", "metrics", "error", "run_dir", "updated"]


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
        s in msg for s in ("not a database", "malformed", "corrupt", "unsupported file format"))


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
    warn(f"{runs_root / INDEX}: corrupt ({exc}); moved to {aside.name} and rebuilt from {n} result.json files")


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
    return (result.spec, result.profile, result.run_id, result.arm, result.seed, result.state.value,
            json.dumps(result.params, default=str), json.dumps(result.metrics), (result.error or {}).get("message"),
            str(rdir), time.time())


def index_result(runs_root: str | Path, result: RunResult, rdir: Path) -> None:
    """Upsert one result into `<runs_root>/index.sqlite`."""
    row = _row(result, rdir)

    def op(con: sqlite3.Connection) -> None:
        with con:
            con.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)

    _index_op(runs_root, op)


def write_result(runs_root: str | Path, rdir: Path, result: RunResult) -> None:
    """Atomically write result.json (raises if it cannot), then index it (an index that cannot be
    written is reported, not raised: result.json is the truth and the next `run` reconciles)."""
    atomic_write_json(rdir / "result.json", result.to_json())
    try:
        index_result(runs_root, result, rdir)
    except (sqlite3.Error, OSError) as exc:
        warn(f"{Path(runs_root) / INDEX}: could not index run {result.run_id} ({exc}); its result.json is "
             f"recorded and the next `run` or `python -m harness reindex` brings the index up to date")


def record_result(runs_root: str | Path, rdir: Path, result: RunResult) -> str | None:
    """write_result that never raises: a result that cannot be written (disk full, directory gone)
    is reported on stderr with the path, and the caller goes on. Returns None when it was written,
    else the reason it was not."""
    try:
        write_result(runs_root, rdir, result)
        return None
    except Exception as exc:  # noqa: BLE001 - recording a state must not stop the other runs
        reason = f"{type(exc).__name__}: {exc}"
        warn(f"{rdir / 'result.json'}: could not record state {result.state} of run {result.run_id} ({reason})")
        return reason


def _result_dirs(runs_root: Path) -> Iterator[Path]:
    """Every run directory under the runs root (<spec>/<profile>/<run_id>/, `_` folders aside)."""
    for spec in sorted(runs_root.iterdir()) if runs_root.is_dir() else []:
        if not spec.is_dir() or spec.name.startswith(("_", ".")):
            continue
        for prof in sorted(spec.iterdir()):
            if not prof.is_dir() or prof.name.startswith(("_", ".")):
                continue
            for rdir in sorted(prof.iterdir()):
                if rdir.is_dir() and not rdir.name.startswith(("_", ".")):
                    yield rdir


def _rebuild(runs_root: Path) -> int:
    rows = [_row(r, d) for d in _result_dirs(runs_root) if (r := read_result(d)) is not None]

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
        have = {r[2]: r for r in con.execute("SELECT * FROM runs WHERE spec = ? AND profile = ?", (spec, profile))}
        upsert = [row for rid, row in disk.items() if rid not in have or tuple(have[rid][:10]) != row[:10]]
        gone = [rid for rid, row in have.items() if rid not in disk and not Path(row[9] or "").is_dir()]
        with con:
            con.executemany("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", upsert)
            con.executemany("DELETE FROM runs WHERE spec = ? AND profile = ? AND run_id = ?",
                            [(spec, profile, rid) for rid in gone])
        return len(upsert) + len(gone)

    return _index_op(runs_root, op)


def remove_from_index(runs_root: str | Path, spec: str, profile: str, run_id: str) -> None:
    def op(con: sqlite3.Connection) -> None:
        with con:
            con.execute("DELETE FROM runs WHERE spec = ? AND profile = ? AND run_id = ?", (spec, profile, run_id))

    if (Path(runs_root) / INDEX).exists():
        _index_op(runs_root, op)


def query_index(runs_root: str | Path, spec: str | None = None, profile: str | None = None) -> pd.DataFrame:
    """Rows of the index (all specs, or one spec / profile)."""
    if not (Path(runs_root) / INDEX).exists():
        return pd.DataFrame(columns=_COLUMNS)
    where, args = [], []
    for col, val in (("spec", spec), ("profile", profile)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY spec, profile, arm, seed"
    return _index_op(runs_root, lambda con: pd.read_sql_query(sql, con, params=args))


# ----------------------------------------------------------------------------- manifests

def _read_manifest(path: Path) -> dict | None:
    data = read_json_or_none(path, "it is rewritten from the plan (or the run directories are read)")
    if data is not None and not (isinstance(data, dict) and isinstance(data.get("run_ids"), list)):
        _warn_damaged(path, ValueError("expected an object with a run_ids list"),
                      "it is rewritten from the plan (or the run directories are read)")
        return None
    return data


def check_owner(runs_root: str | Path, spec: str, profile: str, source: str) -> None:
    """ValueError when another spec file with the same `name:` already owns spec+profile here.

    An owner file that no longer exists (the checkout moved, a worktree was deleted) cannot
    collide: its runs pass to `source`, with a note, when the manifest is next written."""
    path = profile_dir(runs_root, spec, profile) / "manifest.json"
    manifest = _read_manifest(path)
    owner = manifest.get("source") if manifest else None
    if owner is None or owner == spec_source(source):
        return
    if not owner.startswith("<") and not os.path.exists(owner):
        _warn_damaged(path, None, f"its runs now belong to {spec_source(source)}",
                      what=f"the spec file that owned name {spec!r}, {owner}, no longer exists")
        return
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
    old = (_read_manifest(path) or {}).get("run_ids", [])
    atomic_write_json(path, {"run_ids": sorted(set(run_ids)), "previous": sorted(set(old) - set(run_ids)),
                             "source": spec_source(source)})


def add_to_manifest(runs_root: str | Path, spec: str, profile: str, run_ids: list[str], source: str) -> None:
    path = profile_dir(runs_root, spec, profile) / "manifest.json"
    current = (_read_manifest(path) or {}).get("run_ids", [])
    write_manifest(runs_root, spec, profile, current + list(run_ids), source)


def load_results(runs_root: str | Path, spec_name: str, profile: str) -> pd.DataFrame:
    """One row per run of the latest expansion (plus reference rows).

    Columns: run_id, spec, profile, arm, seed, state, reference, model (the train-stage id, shared
    by arms that reuse one trained model), run_dir, error, then `param.<dotted key>` for every
    axis and `metric.<name>` for every metric (NaN where a run lacks it). A damaged manifest falls
    back to the run directories; a run whose result.json is damaged is left out (both reported).
    """
    pdir = profile_dir(runs_root, spec_name, profile)
    manifest = _read_manifest(pdir / "manifest.json")
    ids = manifest["run_ids"] if manifest else sorted(p.name for p in pdir.glob("*") if p.is_dir())
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
    order = sorted(range(len(df)), key=lambda i: (natural_key(str(df["arm"].iat[i])), df["seed"].iat[i]))
    return df[base + rest].iloc[order].reset_index(drop=True)


_NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def natural_key(text: str) -> tuple:
    """Sort key reading the numbers in `text` as numbers: "shift=2" < "shift=10" < "shift=10.5".
    (text, number) chunks alternate, so any two keys compare position by position."""
    parts = _NUMBER.split(text)
    return tuple(float(p) if i % 2 else p for i, p in enumerate(parts))


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


# ----------------------------------------------------------------------------- reset

def reset_run(runs_root: str | Path, spec: str, profile: str, run_id: str) -> list[Path]:
    """Delete one run's directory and the shared stage outputs no other run uses, so the next `run`
    recomputes it; ValueError (nothing deleted) when a live process owns the run or computes one of
    those stages. Returns the directories deleted."""
    runs_root = Path(runs_root)
    rdir = run_dir(runs_root, spec, profile, run_id)
    if not rdir.is_dir():
        raise ValueError(f"{rdir}: expected the directory of a run of {spec!r} (profile {profile}), got nothing there")
    hold = acquire_run(rdir, wait=False)
    if hold is None:
        raise ValueError(f"{rdir}: owned by {owner_of(rdir) or 'another process'}, which is computing it; "
                         f"expected a run no live process owns (wait for it, or stop that process first)")
    with hold:
        doomed = []
        for stage in ("train", "sample"):
            link = stage_dir(rdir, stage)
            if not link.is_symlink():
                continue
            target = link.resolve()
            users = [p for p in runs_root.glob(f"*/*/*/stages/{stage}")
                     if p.is_symlink() and p.resolve() == target and p.parents[1] != rdir]
            if users or not target.is_dir() or runs_root.resolve() / "_stages" not in target.parents:
                continue
            if stage_busy(target):
                raise ValueError(f"{target}: a process is computing this {stage} stage now; expected it idle "
                                 f"(wait for it, then reset again)")
            doomed.append(target)
        for target in doomed:
            shutil.rmtree(target)
        shutil.rmtree(rdir)
    remove_from_index(runs_root, spec, profile, run_id)
    return [*doomed, rdir]
