"""Token shards on disk and `ShardDataset`, the streaming `ursa.train.ClipSource` over them.

Layout of a shard directory (written by harness.token_shards, readable by anyone with numpy):
  index.json         {"format", "num_clips", "text_length" L, "latent_shape" [T, h, w], "id_range",
                      "shards": [{"file", "count"}, ...], ...}; written last: its presence means complete
  shard-00000.npy    int32 (n, 2L + T*h*w): per clip its text ids (L), text mask (L, 0/1) and visual
                     ids (T*h*w, row-major), one contiguous row so a clip is one read
  captions.jsonl     {"key", "caption"} per clip, in clip order
A shard is a single .npy written atomically (ursa.io), so a killed writer leaves whole shards and
temp files, never half a shard. Any reader can memory-map it (np.load(mmap_mode="r")); ShardDataset
reads a batch's rows with positioned reads instead, so the process holds exactly the batch: mapped
pages of a random-access pattern count in the process's RSS (measured: 170 MB after 30 batches of
16 over a 200 MB shard set, against 4 MB read), and the kernel decides when they go.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ursa.io import atomic_write, atomic_write_json

FORMAT = "ursa-shards/1"
INDEX = "index.json"
DTYPE = np.int32


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.npy"


def pack_rows(text_ids: Tensor, text_mask: Tensor, visual_ids: Tensor) -> np.ndarray:
    """(N, L) ids, (N, L) mask, (N, T, h, w) ids -> int32 (N, 2L + T*h*w) shard rows."""
    n = visual_ids.shape[0]
    if visual_ids.numel() and int(visual_ids.max()) > np.iinfo(DTYPE).max:
        raise ValueError(
            f"visual_ids: expected ids below 2**31 for int32 shards, got {int(visual_ids.max())}"
        )
    grid = int(
        np.prod(visual_ids.shape[1:])
    )  # explicit widths: an empty shard (n = 0) keeps its row width
    return np.concatenate(
        [text_ids.numpy(), text_mask.to(torch.int64).numpy(), visual_ids.reshape(n, grid).numpy()],
        axis=1,
    ).astype(DTYPE)


def write_shard(path: Path, rows: np.ndarray) -> None:
    """Write int32 (n, D) rows to `path` atomically (unique temp name, fsync, rename)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(rows, dtype=DTYPE))

    atomic_write(path, write)


def write_index(
    directory: Path,
    counts: list[int],
    text_length: int,
    latent_shape: tuple[int, ...],
    id_range: tuple[int, int],
    **extra,
) -> None:
    """Write index.json (atomically, last: it marks the directory complete) for shards 0..len(counts)-1."""
    atomic_write_json(
        Path(directory) / INDEX,
        {
            "format": FORMAT,
            "num_clips": sum(counts),
            "text_length": text_length,
            "latent_shape": list(latent_shape),
            "id_range": list(id_range),
            "shards": [{"file": shard_name(k), "count": n} for k, n in enumerate(counts)],
            **extra,
        },
    )


def read_shard(path: Path, width: int) -> np.ndarray | None:
    """The memory-mapped int32 (n, width) rows of a complete shard, or None if it is missing or damaged."""
    try:
        rows = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if rows.dtype != DTYPE or rows.ndim != 2 or rows.shape[1] != width:
        return None
    return rows


class ShardDataset:
    """N tokenised clips in memory-mapped shards; a `ursa.train.ClipSource`.

    `select(index)` reads the rows of `index` (long (B,)) from their shards and returns a
    `TokenDataset` batch: text_ids long (B, L), text_mask bool (B, L), visual_ids long (B, T, h, w).
    Memory is the batch, whatever N is."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        path = self.directory / INDEX
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"{path}: expected the index of a complete shard directory, got "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if index.get("format") != FORMAT:
            raise ValueError(f"{path}: format: expected {FORMAT!r}, got {index.get('format')!r}")
        self.index = index
        self.text_length = int(index["text_length"])
        t, h, w = (int(x) for x in index["latent_shape"])
        self._latent = (t, h, w)
        self._width = 2 * self.text_length + int(np.prod(self._latent))
        counts = [int(s["count"]) for s in index["shards"]]
        self._files = [self.directory / s["file"] for s in index["shards"]]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(
            np.int64
        )  # clip offset of each shard
        if int(self._starts[-1]) != int(index["num_clips"]):
            raise ValueError(
                f"{path}: num_clips {index['num_clips']} does not match the shards' counts "
                f"({int(self._starts[-1])})"
            )
        self._offsets: dict[int, int] = {}  # shard -> byte offset of its first row, once checked

    def _offset(self, k: int) -> int:
        """Byte offset of shard k's rows, after checking its header and size against the index."""
        if k not in self._offsets:
            want = int(self._starts[k + 1] - self._starts[k])
            path = self._files[k]
            try:
                with open(path, "rb") as f:
                    fmt = np.lib.format
                    read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}[
                        fmt.read_magic(f)
                    ]
                    shape, fortran, dtype = read(f)
                    offset = f.tell()
                ok = (
                    shape == (want, self._width)
                    and dtype == DTYPE
                    and not fortran
                    and path.stat().st_size == offset + want * self._width * DTYPE().itemsize
                )
            except (OSError, ValueError, KeyError):
                ok = False
            if not ok:
                raise ValueError(
                    f"{path}: expected a shard of {want} rows x {self._width} int32, got a missing or "
                    f"damaged file (rerun `python -m harness tokenize` to rebuild it)"
                )
            self._offsets[k] = offset
        return self._offsets[k]

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(T, h, w) of every clip's id grid."""
        return self._latent

    def id_range(self) -> tuple[int, int]:
        """(min, max) visual id over the data set (recorded at tokenisation, not re-read)."""
        low, high = self.index["id_range"]
        return int(low), int(high)

    def captions(self) -> list[str]:
        """Every clip's caption, in clip order."""
        lines = (self.directory / "captions.jsonl").read_text().splitlines()
        return [json.loads(line)["caption"] for line in lines if line.strip()]

    def select(self, index: Tensor):
        """The clips at `index` (long (B,)) as a TokenDataset batch."""
        from ursa.train import TokenDataset

        idx = [int(i) for i in index.reshape(-1)]
        n = len(self)
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise IndexError(f"index: expected clip indices in [0, {n}), got {bad[0]}")
        rows = np.empty((len(idx), self._width), dtype=DTYPE)
        shard = np.searchsorted(self._starts, idx, side="right") - 1
        size = self._width * DTYPE().itemsize
        for k in np.unique(shard).tolist():  # one open per shard the batch touches
            offset = self._offset(k)
            fd = os.open(self._files[k], os.O_RDONLY)
            try:
                for j in np.flatnonzero(shard == k).tolist():
                    buf = os.pread(fd, size, offset + (idx[j] - int(self._starts[k])) * size)
                    if len(buf) != size:
                        raise ValueError(
                            f"{self._files[k]}: shard shorter than its index says (rerun "
                            f"`python -m harness tokenize` to rebuild it)"
                        )
                    rows[j] = np.frombuffer(buf, dtype=DTYPE)
            finally:
                os.close(fd)
        t = torch.from_numpy(rows).long()
        L = self.text_length
        return TokenDataset(
            t[:, :L], t[:, L : 2 * L].bool(), t[:, 2 * L :].reshape(len(idx), *self._latent)
        )
