"""Missing weights/data: one error that lists every missing file, where and how to get it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Resource:
    """A file (or folder) a scorer needs: where it is expected and how to obtain it."""

    path: Path
    how: str
    is_dir: bool = False

    def present(self) -> bool:
        return self.path.is_dir() if self.is_dir else self.path.is_file()


class MissingResourceError(ValueError):
    """Raised before any compute when required weights or data are absent."""

    def __init__(self, what: str, missing: list[Resource]):
        self.missing = missing
        lines = [f"{what}: {len(missing)} required file(s) missing:"]
        lines += [f"  - {r.path}{'/' if r.is_dir else ''}  (obtain: {r.how})" for r in missing]
        super().__init__("\n".join(lines))


def require(what: str, resources: list[Resource]) -> None:
    """Raise MissingResourceError naming every absent resource (deduplicated, in order)."""
    seen: set[Path] = set()
    missing = []
    for r in resources:
        if r.path not in seen and not r.present():
            missing.append(r)
        seen.add(r.path)
    if missing:
        raise MissingResourceError(what, missing)
