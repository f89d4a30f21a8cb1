"""A small video folder with every kind of bad item, built by the tests (real mp4 / gif / png files)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml

from benchmarks.video_folder.example import make_example, render, write_video

# key -> the reason (a substring) it must be skipped with
BAD = {
    "clips/truncated.mp4": "unreadable video",
    "clips/empty.mp4": "empty file (0 bytes)",
    "clips/gone.mp4": "caption of a missing file",
    "clips/uncaptioned.mp4": "file without a caption",
    "clips/one_frame.mp4": "too few frames: the file has 1",
    "clips/notes.txt": "unsupported file type '.txt'",
    "clips/nocaption.gif": "no caption in the manifest",
}
# a held-out row only decoding finds bad: left out of every suite, recorded in each run's result
EVAL_BAD = {"clips/eval_truncated.mp4": "unreadable video"}
GOOD_TRAIN = 8  # usable training rows of the example part
OPTIONS = {"frames": 4, "height": 16, "width": 16, "shard_size": 3}


def build_folder(root: Path) -> Path:
    """make_example's 10 clips (8 train, 2 eval) plus one item of every bad kind (and a bad eval
    clip); writes the manifest as
    captions.csv and captions.jsonl (same rows)."""
    make_example(root, n=10, eval_rows=2, frames=(5, 8))
    rng = np.random.default_rng(1)
    rows = list(csv.DictReader(open(root / "captions.csv")))
    good = (root / "clips" / "clip0000.mp4").read_bytes()
    (root / "clips" / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (root / "clips" / "eval_truncated.mp4").write_bytes(good[: len(good) // 3])
    (root / "clips" / "empty.mp4").write_bytes(b"")
    write_video(root / "clips" / "uncaptioned.mp4", render("red", "left", 6, 32, 32, rng))
    write_video(root / "clips" / "one_frame.mp4", render("red", "left", 1, 32, 32, rng))
    write_video(root / "clips" / "nocaption.gif", render("blue", "up", 6, 32, 32, rng))
    (root / "clips" / "notes.txt").write_text("not a video")
    rows.insert(3, {"path": "clips/truncated.mp4", "caption": "a truncated file", "split": "train"})
    rows += [
        {"path": k, "caption": f"bad item {k}", "split": "train"}
        for k in ("clips/empty.mp4", "clips/gone.mp4", "clips/one_frame.mp4", "clips/notes.txt")
    ]
    rows.append({"path": "clips/nocaption.gif", "caption": " ", "split": "train"})
    rows.append(
        {
            "path": "clips/eval_truncated.mp4",
            "caption": "a truncated held-out clip",
            "split": "eval",
        }
    )
    with open(root / "captions.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "caption", "split"])
        writer.writeheader()
        writer.writerows(rows)
    (root / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def folder_spec(path: Path, root: Path, name: str = "vf_tiny", steps: int = 3, **options) -> Path:
    """A spec training a tiny model on the folder for a few steps (16x16x4 clips, 64 tokens, K = 64)."""
    data = {
        "name": name,
        "base": {
            "benchmark": {"name": "video_folder", "root": str(root), **OPTIONS, **options},
            "model": {"preset": "tiny"},
            "train": {"steps": steps, "batch_size": 4, "checkpoint_every": 2, "warmup_steps": 1},
            "sample": {"steps": 2, "batch_size": 2},
            "score": {"which": ["flicker"], "denoising_bins": 2},
        },
        "executor": {"kind": "inprocess", "threads": 1},
    }
    path.write_text(yaml.safe_dump(data))
    return path
