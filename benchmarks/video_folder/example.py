"""A small example folder: real mp4 / gif / png files of moving coloured squares with captions.

Sizes and lengths vary from file to file (as real data does), so resize, crop and frame
selection are exercised. Deterministic in `seed`. Used by the tests and by anyone who wants to
see the benchmark run before pointing it at their own data.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 60, 220),
    "yellow": (230, 210, 40),
}
MOTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SIZES = ((48, 64), (64, 64), (64, 48), (32, 48))  # (H, W): multiples of 16, as H.264 wants


def render(
    colour: str, motion: str, frames: int, height: int, width: int, rng: np.random.Generator
) -> np.ndarray:
    """uint8 (F, H, W, 3): a square of `colour` moving `motion` on a dark grey background."""
    side = max(4, min(height, width) // 4)
    x, y = int(rng.integers(side, width - 2 * side)), int(rng.integers(side, height - 2 * side))
    dx, dy = MOTIONS[motion]
    video = np.full((frames, height, width, 3), 30, dtype=np.uint8)
    for t in range(frames):
        cx, cy = (x + 2 * dx * t) % (width - side), (y + 2 * dy * t) % (height - side)
        video[t, cy : cy + side, cx : cx + side] = COLOURS[colour]
    return video


def write_video(path: Path, video: np.ndarray, fps: float = 8.0) -> None:
    """uint8 (F, H, W, 3) -> an mp4 / webm (ffmpeg) or gif (Pillow) file, by suffix."""
    import imageio.v2 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        iio.mimwrite(path, list(video), duration=1000.0 / fps, loop=0)
    else:
        iio.mimwrite(
            path,
            list(video),
            fps=fps,
            format="FFMPEG",
            macro_block_size=16,
            output_params=["-v", "error"],
        )


def make_example(
    root: str | Path,
    n: int = 12,
    seed: int = 0,
    eval_rows: int = 2,
    frames: tuple[int, int] = (6, 12),
) -> Path:
    """Write `n` captioned clips (mostly mp4, every 5th a gif, every 7th a png still) and
    captions.csv (the last `eval_rows` rows split 'eval') under `root`; returns the manifest."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        colour, motion = str(rng.choice(list(COLOURS))), str(rng.choice(list(MOTIONS)))
        h, w = SIZES[i % len(SIZES)]
        length = int(rng.integers(frames[0], frames[1] + 1))
        video = render(colour, motion, length, h, w, rng)
        if i % 7 == 6:
            from PIL import Image

            name = f"stills/clip{i:04d}.png"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(video[0]).save(root / name)
            caption = f"a {colour} square"
        else:
            name = f"clips/clip{i:04d}.{'gif' if i % 5 == 4 else 'mp4'}"
            write_video(root / name, video)
            caption = f"a {colour} square moving {motion}"
        rows.append(
            {"path": name, "caption": caption, "split": "eval" if i >= n - eval_rows else "train"}
        )
    manifest = root / "captions.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "caption", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
