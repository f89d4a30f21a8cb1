"""On-disk cache for fitted artefacts (tokenizer codebook, fidelity feature extractor).

Each artefact is one safetensors file (harness.cachefile) whose metadata carries the fingerprint
of everything that determined it and the sha256 of its tensors. A file that cannot be read, or
whose tensors no longer match their checksum (a flipped bit), is refitted with one line on stderr
(never trusted); a readable file whose fingerprint differs from the expected one raises, since it was produced by
different settings and silently reusing or overwriting it would hide the mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from harness.cachefile import load_checked, rebuild_note, save_atomic

CODE_VERSION = "shapes-1"  # bump when fitting or encode/decode semantics change


class FingerprintMismatch(ValueError):
    """A cached artefact was produced by different settings than the ones requested."""


def default_cache_dir() -> Path:
    """$URSA_CACHE/shapes if set, else <repo>/.cache/shapes."""
    root = os.environ.get("URSA_CACHE")
    return (
        Path(root) / "shapes" if root else Path(__file__).resolve().parents[2] / ".cache" / "shapes"
    )


def fingerprint(payload: dict) -> str:
    """16-hex sha256 of the canonical JSON of `payload` plus CODE_VERSION."""
    blob = json.dumps({"code": CODE_VERSION, **payload}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load_or_build(
    path: Path, fp: str, keys: tuple[str, ...], build: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """Load `path` if readable with all `keys`, a matching checksum and fingerprint `fp`; rebuild
    (and save) if missing or damaged; raise FingerprintMismatch if intact with another
    fingerprint."""
    if path.exists():
        try:
            tensors, metadata = load_checked(path, keys)
        except ValueError as err:  # unreadable, incomplete or changed: rebuild, never trust
            rebuild_note(path, err)
        else:
            if metadata.get("fingerprint") != fp:
                raise FingerprintMismatch(
                    f"cache file {path}: expected fingerprint {fp}, got "
                    f"{metadata.get('fingerprint')}; it was built with other settings or code "
                    f"version; delete it to refit"
                )
            return tensors
    tensors = build()
    save_atomic(path, tensors, fp)
    return tensors
