"""Atomic file writes: readers see the old file or the new one, never half of one.

Every writer creates a temp file beside the target (same directory, so same filesystem), fills
and fsyncs it, then os.replace()s it onto the target. If anything fails, including a
KeyboardInterrupt, the temp file is removed and the target is left as it was. The parent
directory is created if missing. Temp files get the permissions a plain open() would (0o666
less the umask; set again before the rename, as some writers, safetensors among them, replace
the temp file with a 0o600 one of their own) and unique names that say who wrote them:
`.{name}.{pid}-{host}{random}{suffix}` (`host`: 4 hex digits of the host name), so a sweep can
tell a live writer's temp file from one a killed process left behind (`stale_temp`). A write
that fails because the disk is full raises OSError(ENOSPC) naming the target, whatever library
did the writing.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:4]
# pid, host tag, random part of a temp name made by temp_tag()
_TAG = re.compile(r"(?<![0-9])(\d+)-([0-9a-f]{4})([0-9a-f]{8})(?![0-9a-f])")
FOREIGN_TEMP_AGE_S = (
    3600.0  # a temp file of another host (shared filesystem) is stale after this long
)


def temp_tag() -> str:
    """`{pid}-{host}{random}`: the unique part of a temp name, traceable to this process."""
    return f"{os.getpid()}-{_HOST}{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_temp_name(name: str) -> bool:
    """A hidden name with `.tmp` in it: a temp file or directory of an atomic writer."""
    return name.startswith(".") and ".tmp" in name


def stale_temp(path: str | Path, *, now: float | None = None) -> bool:
    """Whether the temp file / directory `path` belongs to no live writer: its name carries the pid
    of a process of this host that no longer exists, or another host's tag and it is older than
    FOREIGN_TEMP_AGE_S. A temp name without a tag (older code) is stale only to a caller that holds
    the lock of its directory, so this returns False for it; see `untagged_temp`."""
    path = Path(path)
    if not is_temp_name(path.name):
        return False
    match = _TAG.search(path.name)
    if match is None:
        return False
    pid, host = int(match.group(1)), match.group(2)
    if host == _HOST:
        return pid != os.getpid() and not pid_alive(pid)
    try:
        age = (now or time.time()) - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    return age > FOREIGN_TEMP_AGE_S


def untagged_temp(path: str | Path) -> bool:
    """A temp name without a writer tag (made by older code): nobody can own it any more."""
    name = Path(path).name
    return is_temp_name(name) and _TAG.search(name) is None


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask both sets and reads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _open_temp(path: Path, suffix: str) -> tuple[int, Path]:
    """Create a new, empty temp file beside `path`: (writable fd, its path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{temp_tag()}{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            err = disk_error(exc, path)
            if err is exc:
                raise
            raise err from exc
    raise FileExistsError(f"{path}: could not create a unique temp file beside it")


_FULL = (
    "no space left on device",
    "storagefull",
    "os error 28",
    "disk quota exceeded",
    "os error 122",
)


def disk_error(exc: BaseException, path: str | Path) -> BaseException:
    """`exc` as OSError(ENOSPC / EDQUOT) naming `path` when it says (or the disk shows) the disk is
    full; other exceptions are returned unchanged. Writers without an errno (safetensors, torch.save)
    are recognised by their message or, failing that, by the filesystem having no space left."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        code = exc.errno
    elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return exc
    elif any(s in str(exc).lower() for s in _FULL):
        code = errno.EDQUOT if "quota" in str(exc).lower() or "122" in str(exc) else errno.ENOSPC
    else:
        try:
            st = os.statvfs(Path(path).parent)
            full = st.f_bavail * st.f_frsize < 64 * 1024 or (st.f_files > 0 and st.f_favail == 0)
        except OSError:
            full = False
        if not full:
            return exc
        code = errno.ENOSPC
    named = (
        exc.filename if isinstance(exc, OSError) and exc.filename and exc.errno == code else None
    )
    return OSError(code, os.strerror(code), str(named or path))


def read_json_object(path: str | Path) -> dict:
    """The JSON object in file `path`; a ValueError naming the file otherwise (missing, unreadable,
    not JSON, or JSON that is not an object)."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"{path}: expected a JSON object, could not read or parse it ({exc})"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got a JSON {type(obj).__name__}")
    return obj


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same directory, fsync, os.replace)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """`obj` as JSON (indent 2, sorted keys, str() for anything else, trailing newline), atomically."""
    atomic_write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()
    )


def atomic_write(
    path: str | Path, write: Callable[[Path], object], *, suffix: str = ".tmp"
) -> None:
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
            # some writers replace the temp file with one of their own (safetensors: 0o600)
            mode = 0o666 & ~current_umask()
            if os.fstat(f.fileno()).st_mode & 0o777 != mode:
                os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException as exc:
        err = disk_error(exc, path)  # before the unlink frees the space that tells a full disk
        tmp.unlink(missing_ok=True)
        if err is exc:
            raise
        raise err from exc
