"""Visual tokens made elsewhere: shards of ids plus the codebook they index, as a VisualTokenizer.

For users who tokenised their data with their own tokenizer. A folder holds (`write_precomputed`
writes one; the shards follow ursa/shards.py's conventions, less the text columns, since the text
tokenizer is this project's):

    DIR/precomputed.json        {"temporal_compression": ct, "spatial_compression": s, "causal": true,
                                 "latent_shape": [T, h, w]}
    DIR/codebook.safetensors    tensor "embeddings" float (K, D)   (or DIR/codebook.npy, float (K, D))
    DIR/shards/shard-00000.npy  int32 (n, T*h*w): one row of ids in [0, K) per clip (row-major), the row
                                format of ursa/shards.py without the text columns (text is tokenised here)
    DIR/shards/captions.jsonl   {"caption": ...} per clip, in shard and row order (as ursa/shards.py)

`to_token_shards(text_tokenizer, OUT)` adds the text columns and writes an ursa/shards.py directory
that `ursa.shards.ShardDataset` streams into `ursa.train`, memory one shard at a time.
    DIR/decoder.jit (optional)  TorchScript: ids long (B, T, h, w) -> video float (B, 3, F, H, W) in [-1, 1]
    DIR/encoder.jit (optional)  TorchScript: video float (B, 3, F, H, W) in [-1, 1] -> ids (B, T, h, w), or a
                                tuple whose first entry is (Cosmos's contract)

The codebook rows' distances define the metric path, exactly as a live tokenizer's embeddings do.
Without a decoder nothing can be scored in pixels; without an encoder the conditioned tasks (their
given frames are real clips, tokenised) and held-out scoring cannot run: either is a clear error
when it is needed, not at load.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ursa.io import atomic_write, atomic_write_json, read_json_object
from ursa.shards import pack_rows, read_shard, shard_name, write_index, write_shard
from ursa.tensor_checks import check_ids, describe
from ursa.tokenizers.base import VisualTokenizer
from ursa.tokenizers.cosmos import (
    CausalGeometry,
    file_sha256,
    load_torchscript,
    pixels_to_unit,
    require_files,
    unit_to_pixels,
)
from ursa.tokenizers.text import TextTokenizer

META, CODEBOOK_ST, CODEBOOK_NPY, SHARDS, CAPTIONS = (
    "precomputed.json",
    "codebook.safetensors",
    "codebook.npy",
    "shards",
    "captions.jsonl",
)
ENCODER, DECODER = "encoder.jit", "decoder.jit"
OBTAIN = "write it with the tokenizer you tokenised with (layout: the docstring of ursa/tokenizers/precomputed.py)"


def load_codebook(path: Path) -> torch.Tensor:
    """float32 (K, D) from codebook.safetensors (key "embeddings") or codebook.npy; ValueError naming the file."""
    try:
        if path.suffix == ".npy":
            table = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            with safe_open(str(path), framework="pt") as f:
                if "embeddings" not in f.keys():
                    raise ValueError(
                        f"no tensor 'embeddings' (has {', '.join(f.keys()) or 'none'})"
                    )
                table = f.get_tensor("embeddings")
    except Exception as exc:  # noqa: BLE001 - numpy / safetensors raise many types for damaged files
        raise ValueError(
            f"{path}: expected a float (K, D) codebook, could not read it ({exc})"
        ) from None
    if (
        not table.is_floating_point()
        or table.dim() != 2
        or table.shape[0] < 2
        or table.shape[1] < 1
    ):
        raise ValueError(
            f"{path}: expected a float (K, D) codebook with K >= 2, got {describe(table)}"
        )
    if not bool(torch.isfinite(table).all()):
        raise ValueError(f"{path}: expected finite codebook values, got inf or nan")
    return table.float()


def load_meta(path: Path) -> tuple[CausalGeometry, bool, tuple[int, int, int] | None]:
    """(geometry, causal, the shards' latent_shape) from precomputed.json; ValueError naming the file and key."""
    meta = read_json_object(path)
    for key in ("temporal_compression", "spatial_compression"):
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{path}: {key}: expected an integer >= 1, got {value!r}")
    causal = meta.get("causal", True)
    if not isinstance(causal, bool):
        raise ValueError(f"{path}: causal: expected true or false, got {causal!r}")
    latent = meta.get("latent_shape")
    if latent is not None and (
        not isinstance(latent, list)
        or len(latent) != 3
        or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in latent)
    ):
        raise ValueError(
            f"{path}: latent_shape: expected [T, h, w] of positive integers, got {latent!r}"
        )
    return (
        CausalGeometry((), meta["temporal_compression"], meta["spatial_compression"]),
        causal,
        (tuple(latent) if latent else None),
    )


class PrecomputedTokenizer(VisualTokenizer):
    """Ids and codebook from a folder (layout above); encode / decode through optional TorchScript files.

    ids long (B, T, h, w) in [0, K) <-> video uint8 (B, F, H, W, 3); codebook float (K, D) as stored.
    """

    def __init__(self, folder: str | Path, *, device: str = "cpu", batch_size: int = 1) -> None:
        self.folder = Path(folder)
        book = self.folder / (
            CODEBOOK_NPY if (self.folder / CODEBOOK_NPY).is_file() else CODEBOOK_ST
        )
        require_files(f"precomputed tokenizer {self.folder}", [self.folder / META, book], OBTAIN)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size}")
        self._codebook_path = book
        self.embeddings = load_codebook(book)
        self.geometry, self.causal, self.latent = load_meta(self.folder / META)
        self.device, self.batch_size = torch.device(device), batch_size
        self.encoder = (
            load_torchscript(self.folder / ENCODER, self.device)
            if (self.folder / ENCODER).is_file()
            else None
        )
        self.decoder = (
            load_torchscript(self.folder / DECODER, self.device)
            if (self.folder / DECODER).is_file()
            else None
        )
        self._fp: str | None = None

    @property
    def vocab_size(self) -> int:
        return int(self.embeddings.shape[0])

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        what = f"precomputed tokenizer {self.folder}: video"
        if self.causal:
            return self.geometry.latent_shape(num_frames, height, width, what)
        ct, s = self.geometry.temporal_compression, self.geometry.spatial_compression
        if num_frames < ct or num_frames % ct or height < s or height % s or width < s or width % s:
            raise ValueError(
                f"{what}: expected a multiple of {ct} frames and height and width multiples of {s}, "
                f"got {num_frames} frames of {height} x {width}"
            )
        return num_frames // ct, height // s, width // s

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.validate_video(video)
        shape = self.latent_shape(*video.shape[1:4])
        if self.encoder is None:
            raise ValueError(
                f"precomputed tokenizer {self.folder}: expected {self.folder / ENCODER} to tokenise pixels "
                f"(conditioned tasks and held-out scoring tokenise real clips), got none; add the "
                f"encoder as TorchScript or use only t2v / t2i without score.denoising_bins"
            )
        out = []
        for i in range(0, len(video), self.batch_size):
            result = self.encoder(pixels_to_unit(video[i : i + self.batch_size]).to(self.device))
            ids = (result[0] if isinstance(result, (tuple, list)) else result).cpu()
            want = (min(self.batch_size, len(video) - i), *shape)
            if not isinstance(ids, torch.Tensor) or tuple(ids.shape) != want:
                raise ValueError(
                    f"{self.folder / ENCODER}: expected ids of shape {want}, got {describe(ids)}"
                )
            out.append(check_ids(f"{self.folder / ENCODER} ids", ids, self.vocab_size).long())
        return torch.cat(out) if out else torch.zeros((0, *shape), dtype=torch.long)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        self.validate_ids(ids)
        if self.decoder is None:
            raise ValueError(
                f"precomputed tokenizer {self.folder}: expected {self.folder / DECODER} to decode ids "
                f"to pixels for scoring, got none; add the decoder as TorchScript"
            )
        out = []
        for i in range(0, len(ids), self.batch_size):
            video = self.decoder(ids[i : i + self.batch_size].long().to(self.device))
            if not isinstance(video, torch.Tensor) or video.dim() != 5 or video.shape[1] != 3:
                raise ValueError(
                    f"{self.folder / DECODER}: expected video float (B, 3, F, H, W), got {describe(video)}"
                )
            out.append(unit_to_pixels(video.cpu()))
        return torch.cat(out)

    def codebook_embeddings(self) -> torch.Tensor:
        return self.embeddings

    def fingerprint(self) -> str:
        """sha256 of the codebook, metadata and TorchScript files' bytes (computed once)."""
        if self._fp is None:
            h = hashlib.sha256()
            for path in (
                self.folder / META,
                self._codebook_path,
                self.folder / ENCODER,
                self.folder / DECODER,
            ):
                h.update(f"{path.name}:{file_sha256(path) if path.is_file() else '-'};".encode())
            self._fp = h.hexdigest()[:16]
        return self._fp

    # ------------------------------------------------------------------ shards

    def shards(self) -> list[Path]:
        """The shard files (shards/shard-*.npy), in name order: the order clips are read in."""
        return shard_files(self.folder)

    def iter_shards(self) -> Iterator[torch.Tensor]:
        """Each shard's ids long (n, T, h, w), checked (width from latent_shape, values in [0, K)), in order;
        memory is one shard."""
        files = self.shards()
        if not files:
            raise ValueError(
                f"precomputed tokenizer {self.folder}: expected shards {self.folder / SHARDS}/shard-*.npy, "
                f"got none"
            )
        shape = self._latent_shape()
        for path in files:
            rows = read_shard(path, math.prod(shape))
            if rows is None:
                raise ValueError(
                    f"{path}: expected int32 rows of T*h*w = {math.prod(shape)} ids (latent_shape {shape} "
                    f"in {META}), got a damaged file or another width"
                )
            ids = torch.from_numpy(np.array(rows, dtype=np.int64)).reshape(-1, *shape)
            yield check_ids(f"{path}: ids", ids, self.vocab_size)

    def shard_counts(self) -> list[int]:
        """Clips per shard, in order, from the shard headers (no ids read); ValueError naming a damaged one."""
        return shard_counts(self.shards(), self._latent_shape())

    def num_clips(self) -> int:
        """Clips over all shards, from the shard headers (no ids read)."""
        return sum(self.shard_counts())

    def pixel_geometry(self) -> tuple[int, int, int]:
        """(F, H, W) of the pixel clips the shards' (T, h, w) grids stand for (the inverse of latent_shape)."""
        T, h, w = self._latent_shape()
        ct, s = self.geometry.temporal_compression, self.geometry.spatial_compression
        return (1 + ct * (T - 1) if self.causal else ct * T), h * s, w * s

    def read_all(self) -> tuple[list[str], torch.Tensor]:
        """(captions, ids long (N, T, h, w)) of every shard, checked: one caption per clip, ids in [0, K)."""
        ids = torch.cat(list(self.iter_shards()))
        return read_captions(self.folder / SHARDS / CAPTIONS, len(ids)), ids

    def to_token_shards(self, text: TextTokenizer, out: str | Path) -> Path:
        """Write the shards as an ursa.shards directory, text columns added by `text`, one shard at a time:
        `ursa.shards.ShardDataset(out)` then streams them into ursa.train. index.json comes last (complete)."""
        out = Path(out)
        captions = read_captions(self.folder / SHARDS / CAPTIONS, self.num_clips())
        text_ids, text_mask = text(captions)  # (N, L): one L for every shard
        counts: list[int] = []
        low, high = self.vocab_size, -1
        for k, ids in enumerate(self.iter_shards()):
            lo, n = sum(counts), len(ids)
            write_shard(
                out / shard_name(k), pack_rows(text_ids[lo : lo + n], text_mask[lo : lo + n], ids)
            )
            counts.append(n)
            if n:
                low, high = min(low, int(ids.min())), max(high, int(ids.max()))
        atomic_write(
            out / CAPTIONS,
            lambda tmp: tmp.write_text(
                "".join(
                    json.dumps({"key": str(i), "caption": c}) + "\n" for i, c in enumerate(captions)
                )
            ),
        )
        write_index(
            out,
            counts,
            text_ids.shape[1],
            self._latent_shape(),
            (low, high),
            source=str(self.folder),
            fingerprint=self.fingerprint(),
        )
        return out

    def _latent_shape(self) -> tuple[int, int, int]:
        if self.latent is None:
            raise ValueError(
                f"{self.folder / META}: latent_shape: expected [T, h, w] of the shards' clips, got none"
            )
        return self.latent


def shard_files(folder: Path) -> list[Path]:
    """DIR/shards/shard-*.npy in name order: the order clips are read in."""
    return sorted((Path(folder) / SHARDS).glob("shard-*.npy"))


def shard_counts(files: list[Path], latent: tuple[int, int, int]) -> list[int]:
    """Rows of each shard from its header (no ids read); ValueError naming a damaged one or another width."""
    width, counts = math.prod(latent), []
    for path in files:
        rows = read_shard(path, width)
        if rows is None:
            raise ValueError(
                f"{path}: expected int32 rows of T*h*w = {width} ids (latent_shape {list(latent)} in "
                f"{META}), got a damaged file or another width"
            )
        counts.append(len(rows))
    return counts


def read_caption_rows(path: Path, count: int) -> list[dict]:
    """The objects of a JSONL file, one per clip: a string `caption`, optional string `key` and `split`
    ("train" / "eval"); ValueError naming the file and line unless there are exactly `count` of them."""
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"{path}: expected one JSON object with a caption per clip, could not read it ({exc})"
        ) from None
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not isinstance(r.get("caption"), str):
            raise ValueError(
                f"{path}: line {i + 1}: expected an object with a string 'caption', got {str(r)[:80]}"
            )
        if not isinstance(r.get("key", ""), str) or r.get("split", "train") not in (
            "train",
            "eval",
        ):
            raise ValueError(
                f"{path}: line {i + 1}: expected an optional string 'key' and 'split' train or eval, "
                f"got key {r.get('key')!r}, split {r.get('split')!r}"
            )
    if len(rows) != count:
        raise ValueError(
            f"{path}: expected {count} captions (one per clip in the shards), got {len(rows)}"
        )
    return rows


def read_captions(path: Path, count: int) -> list[str]:
    """The `caption` of each line of a JSONL file; ValueError unless there are exactly `count` strings."""
    return [r["caption"] for r in read_caption_rows(path, count)]


def write_precomputed(
    folder: str | Path,
    ids: torch.Tensor,
    captions: list[str],
    codebook: torch.Tensor,
    *,
    temporal_compression: int,
    spatial_compression: int,
    causal: bool = True,
    shard_size: int = 1024,
) -> None:
    """Write a precomputed-tokens folder: ids int (N, T, h, w) in [0, K) with their N captions, codebook
    float (K, D); every file atomically (shards are ursa.shards rows, int32 (n, T*h*w))."""
    folder = Path(folder)
    check_ids("ids", ids, len(codebook), ("N", "T", "h", "w"))
    if len(captions) != len(ids) or not all(isinstance(c, str) for c in captions):
        raise ValueError(
            f"captions: expected {len(ids)} strings (one per clip), got {len(captions)} items"
        )
    for k, start in enumerate(range(0, len(ids), shard_size)):
        write_shard(
            folder / SHARDS / shard_name(k),
            ids[start : start + shard_size].reshape(-1, math.prod(ids.shape[1:])).numpy(),
        )
    atomic_write(
        folder / SHARDS / CAPTIONS,
        lambda tmp: tmp.write_text("".join(json.dumps({"caption": c}) + "\n" for c in captions)),
    )
    atomic_write(
        folder / CODEBOOK_ST,
        lambda tmp: save_file({"embeddings": codebook.float().contiguous()}, str(tmp)),
    )
    atomic_write_json(
        folder / META,
        {
            "temporal_compression": temporal_compression,
            "causal": causal,
            "spatial_compression": spatial_compression,
            "latent_shape": list(ids.shape[1:]),
        },
    )
