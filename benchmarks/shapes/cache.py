"""On-disk cache for fitted artefacts (tokenizer codebook, fidelity feature extractor).

Each artefact is one safetensors file whose metadata carries the fingerprint of everything
that determined it. A file that cannot be read is refitted (never trusted); a readable file
whose fingerprint differs from the expected one raises, since it was produced by different
settings and silently reusing or overwriting it would hide the mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, safe_open, save_file

from ursa.io import atomic_write

CODE_VERSION = "shapes-1"  # bump when fitting or encode/decode semantics change


class FingerprintMismatch(ValueError):
    """A cached artefact was produced by different settings than the ones requested."""


def default_cache_dir() -> Path:
    """$URSA_CACHE/shapes if set, else <repo>/.cache/shapes."""
    root = os.environ.get("URSA_CACHE")
    return Path(root) / "shapes" if root else Path(__file__).resolve().parents[2] / ".cache" / "shapes"


def fingerprint(payload: dict) -> str:
    """16-hex sha256 of the canonical JSON of `payload` plus CODE_VERSION."""
    blob = json.dumps({"code": CODE_VERSION, **payload}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_atomic(path: Path, tensors: dict[str, torch.Tensor], fp: str) -> None:
    """Write tensors + {"fingerprint": fp} to `path` atomically (ursa.io.atomic_write)."""
    atomic_write(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, tmp,
                                             metadata={"fingerprint": fp}))


def load_or_build(path: Path, fp: str, keys: tuple[str, ...], build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Load `path` if readable with all `keys` and fingerprint `fp`; rebuild (and save) if
    missing or corrupt; raise FingerprintMismatch if readable with another fingerprint."""
    if path.exists():
        try:
            with safe_open(str(path), framework="pt") as f:
                stored = (f.metadata() or {}).get("fingerprint")
            tensors = load_file(str(path))
            if not set(keys) <= set(tensors):
                raise KeyError(f"missing keys {sorted(set(keys) - set(tensors))}")
        except Exception as err:  # unreadable or incomplete: rebuild, never trust
            warnings.warn(f"cache file {path} is corrupt ({err}); rebuilding it", stacklevel=2)
        else:
            if stored != fp:
                raise FingerprintMismatch(
                    f"cache file {path}: expected fingerprint {fp}, got {stored}; it was built with other "
                    f"settings or code version; delete it to refit"
                )
            return tensors
    tensors = build()
    save_atomic(path, tensors, fp)
    return tensors
