"""Pre-tokenisation of a streaming benchmark into token shards: a cached stage of the data config.

`tokenize(data, runs_root)` decodes the benchmark's training clips (`Benchmark.training_clips` /
`load_clip`) with a small thread pool (ffmpeg decodes in subprocesses, Pillow releases the GIL),
encodes them with the visual tokenizer on the training device and writes `ursa.shards` shards
under `<runs_root>/_cache/shards/<data fingerprint>/`. The data fingerprint hashes the manifest,
every file's size, mtime and a cheap hash, the preprocessing options and both tokenizers, so every
run with the same data shares one copy. Items are assigned to shards before decoding (shard k =
items [k*S, (k+1)*S)), each shard is written atomically with its captions and skip reasons, and a
rerun after a kill skips the complete shards: the result is byte-identical to an uninterrupted run.
A file lock per shard directory (harness.store.stage_lock) makes one process do the work when several
runs or workers need the same data: the others wait, then read the finished shards.
A benchmark of ids tokenised elsewhere (`pretokenized = True`, e.g. token_folder) gives its clips' ids
(`load_tokens`) instead of pixels: they are range-checked against the tokenizer's K, never encoded, and
only the text columns are added.
`python -m harness tokenize SPEC` runs this stage alone.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from tqdm.auto import tqdm

from harness.cachefile import load_checked, rebuild_note, save_atomic
from harness.data import Data, cache_dir, load_data
from harness.plugins import BadClip, ClipItem
from harness.store import stage_lock, sweep_temps
from ursa.io import atomic_write, atomic_write_json
from ursa.shards import (
    INDEX,
    ShardDataset,
    pack_rows,
    read_shard,
    shard_name,
    write_index,
    write_shard,
)

DEFAULT_SHARD_SIZE = 256
ENCODE_BATCH = 32  # clips per tokenizer call: bounds encoder memory on the device


def shard_dir(data: Data, runs_root: str | Path) -> Path:
    """Where the shards of `data` live (complete once index.json exists)."""
    return cache_dir(runs_root) / "shards" / data.fingerprint


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _decode(data: Data, item: ClipItem) -> torch.Tensor | str:
    """uint8 (F, H, W, 3) of `item`, or the reason it is unusable."""
    try:
        clip = data.benchmark.load_clip(item)
    except BadClip as exc:
        return str(exc)
    if tuple(clip.shape) != (*data.benchmark.geometry(), 3) or clip.dtype != torch.uint8:
        return f"decoded to {clip.dtype} {tuple(clip.shape)}, expected uint8 {(*data.benchmark.geometry(), 3)}"
    return clip


def _encode(data: Data, clips: list[torch.Tensor], device: str) -> torch.Tensor:
    """uint8 clips (F, H, W, 3) -> long (n, T, h, w), ENCODE_BATCH clips per tokenizer call."""
    if not clips:
        return torch.zeros((0, *data.latent_shape()), dtype=torch.long)
    out = []
    for i in range(0, len(clips), ENCODE_BATCH):
        video = torch.stack(clips[i : i + ENCODE_BATCH])
        if hasattr(data.tokenizer, "to"):  # a tokenizer with weights runs where training runs
            video = video.to(device)
        out.append(data.tokenizer.encode(video).long().cpu())
    return torch.cat(out)


def _read_ids(data: Data, items: list[ClipItem]) -> list[torch.Tensor | str]:
    """Stored ids long (T, h, w) of a pretokenized benchmark's `items`, or the reason one is unusable."""
    ids = data.benchmark.load_tokens(items)  # (n, T, h, w)
    latent, k = data.latent_shape(), data.tokenizer.vocab_size
    if tuple(ids.shape) != (len(items), *latent):
        raise ValueError(
            f"benchmark {type(data.benchmark).__name__}: load_tokens: expected ids of shape "
            f"{(len(items), *latent)}, got {tuple(ids.shape)}"
        )
    low, high = ids.flatten(1).min(1).values, ids.flatten(1).max(1).values
    return [
        ids[j]
        if 0 <= low[j] and high[j] < k
        else f"ids outside the codebook [0, {k}): min {int(low[j])}, max {int(high[j])}"
        for j in range(len(items))
    ]


def _shard_ids(
    data: Data, pool: ThreadPoolExecutor, items: list[ClipItem], device: str
) -> tuple[list[int], torch.Tensor, list[dict[str, str]]]:
    """(positions of the usable items, their ids long (n, T, h, w), {"key", "reason"} of the others)."""
    if data.benchmark.pretokenized:  # ids made elsewhere: read and checked, not encoded
        loaded = _read_ids(data, items)
    else:
        loaded = list(pool.map(lambda it: _decode(data, it), items))
    good = [j for j, d in enumerate(loaded) if isinstance(d, torch.Tensor)]
    clips = [d for d in loaded if isinstance(d, torch.Tensor)]  # loaded[j] for j in good
    if data.benchmark.pretokenized:
        visual = (
            torch.stack(clips)
            if clips
            else torch.zeros((0, *data.latent_shape()), dtype=torch.long)
        )
    else:
        visual = _encode(data, clips, device)
    skipped = [
        {"key": items[j].key, "reason": d}
        for j, d in enumerate(loaded)
        if not isinstance(d, torch.Tensor)
    ]
    return good, visual, skipped


def _shard_meta(out: Path, k: int) -> Path:
    return out / f"shard-{k:05d}.json"


def _complete(out: Path, k: int, width: int) -> dict | None:
    """The sidecar of shard k if the shard is complete and readable, else None."""
    try:
        meta = json.loads(_shard_meta(out, k).read_text())
    except (OSError, ValueError):
        return None
    rows = read_shard(out / shard_name(k), width)
    return meta if rows is not None and rows.shape[0] == len(meta.get("keys", ())) else None


def tokenize(
    data: Data,
    runs_root: str | Path,
    *,
    device: str = "cpu",
    workers: int | None = None,
    progress: bool = True,
    on_shard: Callable[[int], None] | None = None,
) -> Path:
    """The complete shard directory of `data` (built, or finished after a kill, if needed).

    on_shard(k) is called after shard k is written (tests raise from it to simulate a kill).
    One process at a time per shard directory: another that holds its lock is waited for, and its
    finished shards are read instead of built again.
    Raises ValueError (one paragraph, the reasons counted) when no clip is usable."""
    out = shard_dir(data, runs_root)
    if (out / INDEX).is_file():
        return out
    with stage_lock(out):
        if (out / INDEX).is_file():  # another run or worker tokenised this data while we waited
            return out
        sweep_temps(out, locked=True, recursive=False)  # temp files of a killed writer
        return _tokenize(
            data, out, device=device, workers=workers, progress=progress, on_shard=on_shard
        )


def _tokenize(
    data: Data,
    out: Path,
    *,
    device: str,
    workers: int | None,
    progress: bool,
    on_shard: Callable[[int], None] | None,
) -> Path:
    """Build the missing shards of `out` and finish it (the caller holds its lock)."""
    start = time.perf_counter()
    items, known_bad = data.benchmark.training_clips()
    size = int(getattr(data.benchmark.options, "shard_size", DEFAULT_SHARD_SIZE))
    text_ids, text_mask = data.text(
        [item.caption for item in items]
    )  # (N, L): one L for every shard
    latent = data.latent_shape()
    width = 2 * text_ids.shape[1] + math.prod(latent)
    if hasattr(data.tokenizer, "to"):
        data.tokenizer.to(device)
    num_shards = math.ceil(len(items) / size)
    metas, done_before = [], 0
    bar = tqdm(
        total=len(items), unit="clip", desc="tokenize", disable=not progress, file=sys.stderr
    )
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        for k in range(num_shards):
            lo, hi = k * size, min((k + 1) * size, len(items))
            meta = _complete(out, k, width)
            if meta is None:
                good, visual, skipped = _shard_ids(data, pool, items[lo:hi], device)
                rows = pack_rows(
                    text_ids[[lo + j for j in good]], text_mask[[lo + j for j in good]], visual
                )
                meta = {
                    "keys": [items[lo + j].key for j in good],
                    "captions": [items[lo + j].caption for j in good],
                    "skipped": skipped,
                    "id_range": [int(visual.min()), int(visual.max())] if len(good) else None,
                }
                atomic_write_json(
                    _shard_meta(out, k), meta
                )  # before the shard: a shard never lacks its sidecar
                write_shard(out / shard_name(k), rows)
                if on_shard is not None:
                    on_shard(k)
            else:
                done_before += hi - lo
            metas.append(meta)
            bar.update(hi - lo)
            bar.set_postfix(skipped=sum(len(m["skipped"]) for m in metas))
    bar.close()
    return _finish(
        data,
        out,
        metas,
        known_bad,
        latent,
        text_ids.shape[1],
        len(items) - done_before,
        time.perf_counter() - start,
    )


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    atomic_write(path, write)


def _finish(
    data: Data,
    out: Path,
    metas: list[dict],
    known_bad: list[dict],
    latent: tuple[int, ...],
    text_length: int,
    decoded: int,
    seconds: float,
) -> Path:
    """Write skipped.jsonl, captions.jsonl and, last, index.json; report the counts."""
    skipped = [*known_bad, *(r for m in metas for r in m["skipped"])]
    _write_jsonl(out / "skipped.jsonl", skipped)
    num = sum(len(m["keys"]) for m in metas)
    if num == 0:
        reasons = Counter(
            r["reason"].split(" (")[0].split(": ", 1)[-1] for r in skipped
        ).most_common(3)
        raise ValueError(
            f"benchmark {type(data.benchmark).__name__}: expected at least one usable training clip, "
            f"got none: all {len(skipped)} items were skipped (most common reasons: "
            f"{'; '.join(f'{n} x {r}' for r, n in reasons)}); every item's reason is in "
            f"{out / 'skipped.jsonl'}"
        )
    _write_jsonl(
        out / "captions.jsonl",
        [{"key": k, "caption": c} for m in metas for k, c in zip(m["keys"], m["captions"])],
    )
    ranges = [m["id_range"] for m in metas if m["id_range"] is not None]
    write_index(
        out,
        [len(m["keys"]) for m in metas],
        text_length,
        latent,
        (min(r[0] for r in ranges), max(r[1] for r in ranges)),
        fingerprint=data.fingerprint,
        skipped=len(skipped),
    )
    rate = decoded / seconds if seconds > 0 else float("nan")
    print(
        f"tokenize: {num} clips in {len(metas)} shards, {len(skipped)} skipped (reasons: {out / 'skipped.jsonl'}); "
        f"{decoded} decoded in {seconds:.1f} s ({rate:.1f} clips/s) -> {out}",
        file=sys.stderr,
    )
    return out


def training_tokens(data: Data, runs_root: str | Path, device: str = "cpu", progress: bool = False):
    """The tokenised training set, cached per data fingerprint: a ursa.shards.ShardDataset read
    lazily from token shards for a benchmark that `streams` (`tokenize` writes them on first
    use, encoding on `device`, or reading the stored ids of a `pretokenized` one), else an in-memory
    ursa.train.TokenDataset."""
    from ursa.train import TokenDataset

    if data.benchmark.streams:
        return ShardDataset(tokenize(data, runs_root, device=device, progress=progress))

    path = cache_dir(runs_root) / "data" / f"train-{data.fingerprint}.safetensors"
    keys = ("text_ids", "text_mask", "visual_ids")
    if path.exists():
        try:  # checksummed like the stages: a flipped bit is rebuilt, never trained on
            t, _ = load_checked(path, keys)
            return TokenDataset(t["text_ids"], t["text_mask"].bool(), t["visual_ids"])
        except ValueError as exc:
            rebuild_note(path, exc)
    captions, videos = data.benchmark.training_set()
    text_ids, text_mask = data.text(captions)
    visual_ids = data.tokenizer.encode(videos)
    tensors = {
        "text_ids": text_ids,
        "text_mask": text_mask.to(torch.uint8),
        "visual_ids": visual_ids,
    }
    save_atomic(path, tensors, data.fingerprint)  # a unique temp name per writer
    return TokenDataset(text_ids, text_mask, visual_ids)


def tokenize_spec(
    spec,
    profile: str,
    runs_root: str | Path,
    *,
    workers: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> int:
    """`python -m harness tokenize`: build the shards of every distinct data config of `spec`
    (benchmarks that keep their training set in memory are listed and left alone). Returns 0."""
    from harness.expand import expand
    from harness.identity import canonical_json, data_config

    if workers is not None and workers < 1:
        raise ValueError(f"--workers: expected an integer >= 1, got {workers}")
    configs: dict[str, tuple[dict, str]] = {}
    for run in expand(spec, profile):
        cfg = data_config(run.config)
        configs.setdefault(canonical_json(cfg), (cfg, run.config.train.device))
    for cfg, train_device in configs.values():
        data = load_data(cfg, runs_root)
        name = cfg["benchmark"]["name"]
        if not data.benchmark.streams:
            print(
                f"{name} (data {data.fingerprint}): keeps its training set in memory; nothing to tokenise"
            )
            continue
        out = tokenize(
            data, runs_root, device=device or train_device, workers=workers, progress=progress
        )
        index = json.loads((out / INDEX).read_text())
        print(
            f"{name} (data {data.fingerprint}): {index['num_clips']} clips in {len(index['shards'])} shards, "
            f"{index['skipped']} skipped -> {out}"
        )
    return 0
