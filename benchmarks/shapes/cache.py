"""On-disk cache for fitted artefacts (tokenizer codebook, fidelity feature extractor).

Each artefact is one safetensors file whose metadata carries the fingerprint of everything
that determined it and the sha256 of its tensors. A file that cannot be read, or whose tensors no
longer match their checksum (a flipped bit), is refitted with one line on stderr (never trusted);
a readable file whose fingerprint differs from the expected one raises, since it was produced by
different settings and silently reusing or overwriting it would hide the mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
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


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over name, dtype, shape and bytes of every tensor (by name): what the file stores."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_atomic(path: Path, tensors: dict[str, torch.Tensor], fp: str) -> None:
    """Write tensors + {"fingerprint": fp, "sha256": ...} to `path` atomically
    (ursa.io.atomic_write)."""
    metadata = {"fingerprint": fp, "sha256": tensors_sha256(tensors)}
    atomic_write(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, tmp,
                                             metadata=metadata))


def load_checked(path: Path, keys: tuple[str, ...] = ()
                 ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a cache file whose tensors match the sha256 it stores; ValueError
    naming what is wrong otherwise (unreadable, no checksum, checksum differs, keys missing)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises several kinds on a damaged header
        raise ValueError(f"unreadable: {type(err).__name__}: {str(err)[:160]}") from None
    if "sha256" not in metadata:
        raise ValueError("written without a checksum")
    if tensors_sha256(tensors) != metadata["sha256"]:
        raise ValueError("its tensors differ from their stored sha256")
    if not set(keys) <= set(tensors):
        raise ValueError(f"missing keys {sorted(set(keys) - set(tensors))}")
    return tensors, metadata


def rebuild_note(path: Path, why: object) -> None:
    """The one plain stderr line a damaged cache file gets before it is rebuilt."""
    print(f"{path}: damaged cache ({why}); rebuilding it", file=sys.stderr, flush=True)


def load_or_build(path: Path, fp: str, keys: tuple[str, ...], build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
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
