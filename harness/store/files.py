"""Reading the harness's state files, which a killed process or a full disk may have damaged,
and reporting damage once per file version on stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def warn(message: str) -> None:
    """One line on stderr (state the harness found damaged, repaired or could not record)."""
    print(message, file=sys.stderr, flush=True)


_WARNED: set[tuple] = set()


def warn_damaged(
    path: Path, exc: BaseException | None, action: str, what: str = "unreadable"
) -> None:
    """Report a damaged file once per process and version of the file."""
    try:
        st = path.stat()
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, action)
    except OSError:
        key = (str(path), action)
    if key not in _WARNED:
        _WARNED.add(key)
        detail = (
            ""
            if exc is None
            else f" ({type(exc).__name__}: {exc})"[:300]
            if str(exc)
            else f" ({type(exc).__name__})"
        )
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
        warn_damaged(path, exc, action)
        return None
