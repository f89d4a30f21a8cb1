"""Atomic file writes: readers see the old file or the new one, never half of one.

Every writer creates a temp file beside the target (same directory, so same filesystem), fills
and fsyncs it, then os.replace()s it onto the target. If anything fails, including a
KeyboardInterrupt, the temp file is removed and the target is left as it was. The parent
directory is created if missing. Temp files are named `.{name}.{random}{suffix}` and get the
permissions a plain open() would (0o666 less the umask).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _open_temp(path: Path, suffix: str) -> tuple[int, Path]:
    """Create a new, empty temp file beside `path`: (writable fd, its path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: could not create a unique temp file beside it")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same directory, fsync, os.replace)."""
    path = Path(path)
    fd, tmp = _open_temp(path, ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """`obj` as JSON (indent 2, sorted keys, str() for anything else, trailing newline), atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_write(path: str | Path, write: Callable[[Path], object], *, suffix: str = ".tmp") -> None:
    """Call `write(tmp)` to fill an empty temp file beside `path`, then fsync and os.replace it.

    For writers that take a file name (safetensors, PIL, imageio, csv through open()). `suffix`
    ends the temp name; give the target's extension (e.g. ".tmp.mp4") to writers that pick the
    format from it.
    """
    path = Path(path)
    fd, tmp = _open_temp(path, suffix)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "r+b") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
