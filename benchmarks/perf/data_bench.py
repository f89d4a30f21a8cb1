"""Data loading: tokenisation throughput, streaming-loader overhead, and training memory from shards vs memory.

- `tokenize`: a generated example folder (benchmarks.video_folder.example: mp4 / gif / png of varied
  sizes and lengths) through harness.token_shards with 1 and 2 decode workers, each into a fresh cache:
  items per second (decoded or skipped) and the usable clips.
- `loader`: milliseconds per random batch of 16 read by `ShardDataset.select` (positioned reads from
  shards) against `TokenDataset.select` on the same clips in memory.
- `rss`: peak RSS (ru_maxrss) of a fresh process that trains the tiny model a few steps from token
  shards, or from the same clips loaded into memory, at two data-set sizes (synthetic ids, 10x apart):
  streaming memory is the batch, so it should not grow with the data set.

    python -m benchmarks.perf --suite data [--quick]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ursa.shards import ShardDataset, pack_rows, write_index, write_shard
from ursa.train import TokenDataset

TEXT_LEN, VOCAB, TEXT_VOCAB, BATCH = 16, 64, 257, 16


def tokenize_throughput(root: Path, files: int, workers: tuple[int, ...] = (1, 2)) -> dict:
    """Clips/s of harness.token_shards on an example folder of `files` files (4 frames at stride 2 of 16 x 16)."""
    from benchmarks.video_folder.example import make_example
    from harness.data import load_data
    from harness.token_shards import tokenize

    make_example(root / "folder", n=files, eval_rows=max(2, files // 20))
    config = {
        "benchmark": {
            "name": "video_folder",
            "root": str(root / "folder"),
            "frames": 4,
            "frame_stride": 2,
            "height": 16,
            "width": 16,
            "shard_size": 64,
        },
        "tokenizer": {"name": "rgb_grid", "patch": 4},
        "text_tokenizer": {"name": "bytes"},
    }
    out: dict = {"files": files}
    for n in workers:
        cache = root / f"runs_{n}"  # a fresh cache: every item is decoded
        data = load_data(config, cache)
        items = len(data.benchmark.training_clips()[0])
        start = time.perf_counter()
        shards = ShardDataset(tokenize(data, cache, workers=n, progress=False))
        seconds = time.perf_counter() - start
        out[f"workers_{n}"] = {
            "items": items,
            "clips": len(shards),
            "seconds": round(seconds, 3),
            "clips_per_s": round(items / seconds, 2),
        }
    return out


def write_synthetic(
    directory: Path, clips: int, latent: tuple[int, int, int], shard_size: int = 1024
) -> Path:
    """`clips` random clips (text TEXT_LEN ids, visual ids < VOCAB) as an ursa.shards directory, one shard
    in memory at a time; seeded, so every size is a prefix of the larger ones."""
    gen = torch.Generator().manual_seed(0)
    counts = []
    for k, lo in enumerate(range(0, clips, shard_size)):
        n = min(shard_size, clips - lo)
        text = torch.randint(1, TEXT_VOCAB, (n, TEXT_LEN), generator=gen)
        visual = torch.randint(VOCAB, (n, *latent), generator=gen)
        write_shard(
            directory / f"shard-{k:05d}.npy",
            pack_rows(text, torch.ones_like(text, dtype=torch.bool), visual),
        )
        counts.append(n)
    (directory / "captions.jsonl").write_text(
        "".join(json.dumps({"key": str(i), "caption": f"clip {i}"}) + "\n" for i in range(clips))
    )
    write_index(directory, counts, TEXT_LEN, latent, (0, VOCAB - 1))
    return directory


def in_memory(shards: ShardDataset) -> TokenDataset:
    """Every clip of `shards` as one in-memory TokenDataset (filled shard by shard: no second full copy)."""
    n, L = len(shards), shards.text_length
    text = torch.empty((n, L), dtype=torch.long)
    mask = torch.empty((n, L), dtype=torch.bool)
    visual = torch.empty((n, *shards.latent_shape), dtype=torch.long)
    lo = 0
    for entry in shards.index["shards"]:
        rows = torch.from_numpy(np.load(shards.directory / entry["file"]))
        hi = lo + len(rows)
        text[lo:hi], mask[lo:hi] = rows[:, :L], rows[:, L : 2 * L].bool()
        visual[lo:hi] = rows[:, 2 * L :].reshape(len(rows), *shards.latent_shape)
        lo = hi
    return TokenDataset(text, mask, visual)


def loader_overhead(directory: Path, batches: int) -> dict:
    """ms per random batch of BATCH from shards vs from memory (same clips, same indices)."""
    shards = ShardDataset(directory)
    memory = in_memory(shards)
    gen = torch.Generator().manual_seed(1)
    index = [torch.randint(len(shards), (BATCH,), generator=gen) for _ in range(batches)]
    out = {"clips": len(shards)}
    for name, source in (("shards", shards), ("memory", memory)):
        source.select(index[0])  # warm: headers checked, pages of the first batch read
        start = time.perf_counter()
        for idx in index:
            source.select(idx)
        out[f"{name}_ms_per_batch"] = round(1e3 * (time.perf_counter() - start) / batches, 4)
    out["overhead_ms_per_batch"] = round(out["shards_ms_per_batch"] - out["memory_ms_per_batch"], 4)
    return out


def train_child(mode: str, directory: str, steps: int) -> dict:
    """In a fresh process: train the tiny model `steps` steps from `directory`'s shards (`mode` shards) or
    from all its clips loaded into memory (`mode` memory); the process's peak RSS in MB."""
    from ursa.model import URSAConfig, URSAModel
    from ursa.path_config import build_path
    from ursa.train import train
    from ursa.train_config import TrainConfig

    torch.set_num_threads(1)
    shards = ShardDataset(directory)
    source = shards if mode == "shards" else in_memory(shards)
    config = URSAConfig.preset("tiny", text_vocab_size=TEXT_VOCAB, visual_vocab_size=VOCAB)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        train(
            URSAModel(config, seed=0),
            build_path("mixture", vocab_size=VOCAB),
            source,
            TrainConfig(steps=steps, batch_size=BATCH, warmup_steps=1, checkpoint_every=10**9),
            out,
            progress=False,
        )
    return {
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "train_s": round(time.perf_counter() - start, 2),
    }


def _child(mode: str, directory: Path, steps: int) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.perf.data_bench",
            "--train-child",
            mode,
            str(directory),
            str(steps),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def training_rss(
    root: Path, sizes: tuple[int, int], latent: tuple[int, int, int], steps: int
) -> dict:
    """Peak RSS of training from shards and from memory at each size; growth ratio large / small per mode."""
    out: dict = {"latent": list(latent), "steps": steps, "batch": BATCH}
    for n in sizes:
        directory = write_synthetic(root / f"clips_{n}", n, latent)
        out[f"clips_{n}"] = {mode: _child(mode, directory, steps) for mode in ("shards", "memory")}
        out[f"clips_{n}"]["shard_mb"] = round(
            sum(p.stat().st_size for p in directory.glob("shard-*")) / 2**20, 1
        )
    small, large = (out[f"clips_{n}"] for n in sizes)
    for mode in ("shards", "memory"):
        out[f"{mode}_growth_ratio"] = round(
            large[mode]["peak_rss_mb"] / small[mode]["peak_rss_mb"], 4
        )
    return out


def run(quick: bool, device: str) -> dict:
    """Every data figure; `quick`: a 20-file folder, 500 / 5,000 clips of 2 x 8 x 8 ids, 2 steps (about 1 min
    on 2 shared cores, most of it the 4 training processes' start-up). Full: 300 files, 5,000 / 50,000 clips
    of 4 x 16 x 16 ids (the figures of docs/data.md), 5 steps (the peak is reached in the first step).
    CPU only: decoding and the loader are host work (`device` is recorded, not used)."""
    files, sizes, latent, steps = (
        (20, (500, 5000), (2, 8, 8), 2) if quick else (300, (5000, 50000), (4, 16, 16), 5)
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures = {"tokenize": tokenize_throughput(root / "tok", files)}
        figures["rss"] = training_rss(root / "rss", sizes, latent, steps)
        figures["loader"] = loader_overhead(
            root / "rss" / f"clips_{sizes[0]}", batches=50 if quick else 300
        )
    figures["device_used"] = "cpu"
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--train-child":
        print(json.dumps(train_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv, device="cpu"), indent=1))
