"""Sample media: frame-strip PNGs and animated GIFs of generated clips (written atomically)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ursa.io import atomic_write_bytes


def strip(videos: torch.Tensor, max_rows: int = 4, scale: int = 4) -> np.ndarray:
    """videos uint8 (N, F, H, W, 3) -> uint8 image (rows*H*scale, F*W*scale, 3): one clip per row,
    frames left to right, 1-pixel grey gutters."""
    v = videos[:max_rows].numpy()
    n, f, h, w, _ = v.shape
    canvas = np.full((n * (h + 1), f * (w + 1), 3), 128, dtype=np.uint8)
    for i in range(n):
        for j in range(f):
            canvas[i * (h + 1) : i * (h + 1) + h, j * (w + 1) : j * (w + 1) + w] = v[i, j]
    return canvas.repeat(scale, 0).repeat(scale, 1)


def write_strip(path: str | Path, videos: torch.Tensor, max_rows: int = 4) -> None:
    buf = io.BytesIO()
    Image.fromarray(strip(videos, max_rows)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def write_gif(
    path: str | Path, videos: torch.Tensor, max_clips: int = 4, scale: int = 4, fps: int = 4
) -> None:
    """Up to `max_clips` clips side by side, animated over frames."""
    v = videos[:max_clips].numpy()  # (n, F, H, W, 3)
    frames = np.concatenate(list(v), axis=2).repeat(scale, 1).repeat(scale, 2)  # (F, H*s, n*W*s, 3)
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
    )
    atomic_write_bytes(path, buf.getvalue())
