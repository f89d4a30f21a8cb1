"""Recording a run's result: result.json first (the truth), then its row in the index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from harness.records import RunResult
from harness.store.files import warn
from harness.store.index import INDEX, index_result
from ursa.io import atomic_write_json


def write_result(runs_root: str | Path, rdir: Path, result: RunResult) -> None:
    """Atomically write result.json (raises if it cannot), then index it (an index that cannot be
    written is reported, not raised: result.json is the truth and the next `run` reconciles)."""
    atomic_write_json(rdir / "result.json", result.to_json())
    try:
        index_result(runs_root, result, rdir)
    except (sqlite3.Error, OSError) as exc:
        warn(
            f"{Path(runs_root) / INDEX}: could not index run {result.run_id} ({exc}); its result.json is "
            f"recorded and the next `run` or `python -m harness reindex` brings the index up to date"
        )


def record_result(runs_root: str | Path, rdir: Path, result: RunResult) -> str | None:
    """write_result that never raises: a result that cannot be written (disk full, directory gone)
    is reported on stderr with the path, and the caller goes on. Returns None when it was written,
    else the reason it was not."""
    try:
        write_result(runs_root, rdir, result)
        return None
    except Exception as exc:  # noqa: BLE001 - recording a state must not stop the other runs
        reason = f"{type(exc).__name__}: {exc}"
        warn(
            f"{rdir / 'result.json'}: could not record state {result.state} of run {result.run_id} ({reason})"
        )
        return reason
