"""Checksummed safetensors cache files: written atomically with the sha256 of their tensors and
a fingerprint of what made them, trusted on read only while that sha256 still matches.

Used for every fitted or computed artefact a run caches (a benchmark's tokenizer codebook, an
in-memory training set): a damaged file is rebuilt with one stderr line, never read.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from ursa.io import atomic_write


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
    atomic_write(
        path,
        lambda tmp: save_file(
            {k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata
        ),
    )


def load_checked(
    path: Path, keys: tuple[str, ...] = ()
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
