"""Tokenizers that work on any video folder with no weights: a colour-grid patch tokenizer and a
byte-level caption tokenizer.

They make a folder trainable and testable on a laptop (smoke runs, CI); a study that means
something uses a learned tokenizer (`cosmos`) and a real text tokenizer (`hf`).
"""

from __future__ import annotations

import hashlib

import torch

from ursa.tokenizers.base import VisualTokenizer
from ursa.tokenizers.text import pad_batch


class RGBGridTokenizer(VisualTokenizer):
    """Each `patch` x `patch` pixel block -> its mean colour quantised on a uniform grid of `levels`
    values per channel: K = levels ** 3, id = (r * levels + g) * levels + b. No temporal
    compression. uint8 (B, F, H, W, 3) <-> long (B, F, H / patch, W / patch)."""

    def __init__(self, patch: int = 4, levels: int = 4) -> None:
        if patch < 1 or levels < 2:
            raise ValueError(
                f"patch >= 1 and levels >= 2 expected, got patch={patch}, levels={levels}"
            )
        self.patch, self.levels = patch, levels
        grid = torch.arange(levels, dtype=torch.float32) * (255.0 / (levels - 1))
        r, g, b = torch.meshgrid(grid, grid, grid, indexing="ij")
        self._colours = torch.stack([r, g, b], -1).reshape(-1, 3)  # float (K, 3), id order

    @property
    def vocab_size(self) -> int:
        return self.levels**3

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        if height % self.patch or width % self.patch:
            raise ValueError(
                f"frame size: expected height and width divisible by the tokenizer's patch "
                f"{self.patch}, got {height}x{width}"
            )
        return num_frames, height // self.patch, width // self.patch

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """video uint8 (B, F, H, W, 3) -> ids long (B, F, H/p, W/p)."""
        self.validate_video(video)
        b, f, h, w, _ = video.shape
        t, hh, ww = self.latent_shape(f, h, w)
        p = self.patch
        means = video.float().reshape(b, f, hh, p, ww, p, 3).mean((3, 5))  # (B, F, h, w, 3)
        q = torch.round(means * ((self.levels - 1) / 255.0)).long().clamp_(0, self.levels - 1)
        return (q[..., 0] * self.levels + q[..., 1]) * self.levels + q[..., 2]

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids long (B, T, h, w) -> video uint8 (B, T, h*p, w*p, 3)."""
        self.validate_ids(ids)
        rgb = self._colours[ids.long().cpu()].round().to(torch.uint8)  # (B, T, h, w, 3)
        return rgb.repeat_interleave(self.patch, 2).repeat_interleave(self.patch, 3)

    def codebook_embeddings(self) -> torch.Tensor:
        """float (K, 3): grid colours / 255, centred (the metric path normalises rows; see shapes)."""
        rows = self._colours / 255.0
        return rows - rows.mean(0)

    def fingerprint(self) -> str:
        return hashlib.sha256(f"rgb_grid:{self.patch}:{self.levels}".encode()).hexdigest()[:16]


class ByteTokenizer:
    """Captions -> UTF-8 bytes + 1 (0 is padding), truncated to `max_length`: vocab 257, no files."""

    vocab_size = 257
    pad_id = 0

    def __init__(self, max_length: int = 64) -> None:
        self.max_length = max_length

    def __call__(
        self, captions: list[str], max_length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (ids long (B, L), mask bool (B, L)), L = the longest (truncated) caption."""
        limit = min(self.max_length, max_length) if max_length is not None else self.max_length
        return pad_batch(
            [[b + 1 for b in c.encode("utf-8")[:limit]] for c in captions], self.pad_id
        )

    def fingerprint(self) -> str:
        return hashlib.sha256(f"bytes:{self.max_length}".encode()).hexdigest()[:16]
