"""ShapesTokenizer: a patch codebook for the shapes world, fitted by k-means on real frames.

Every 4x4 pixel patch is described by its silhouette (a 16-bit binary mask of non-background
pixels) and its foreground colour. The mask codebook is fitted by weighted k-means over the
masks seen in real training frames (centroids snapped to their nearest observed mask, so every
code decodes to a clean, on-palette patch); the token vocabulary is the empty patch plus every
(colour, non-empty mask) pair: K = 1 + C * (M - 1). Temporal compression is 1 (one token grid
per frame): frames are tokenised independently, so I2V / interpolation conditions are
frame-exact.

codebook_embeddings() are the decoded RGB patches / 255 (K, 48), centred on their mean over the
codebook. The metric path L2-normalises embeddings, and raw RGB rows are all positive, so after
normalisation direction, not pixel content, would decide distance: the empty patch's nearest
neighbour became the solid blue patch and a 2-pixel speck sat far from empty. Centring keeps the
normalised distance faithful to what the patches draw: its Spearman rank correlation with the
Hamming distance between the patches' palette labels is 0.71 for centred rows against 0.24 for
raw rows (K = 65, 16x16 world; `pytest tests/benchmarks/shapes/test_shapes_tokenizer.py -k rank`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.shapes.cache import default_cache_dir, fingerprint, load_or_build
from benchmarks.shapes.prompts import make_training_set
from benchmarks.shapes.world import PALETTE, WorldConfig, palette_labels
from ursa.tokenizers.base import VisualTokenizer

PATCH = 4
_BITS = (1 << np.arange(PATCH * PATCH)).astype(np.int64)  # bit k <-> pixel k of the row-major patch
NUM_COLOURS = len(PALETTE) - 1


def _patchify(x: np.ndarray) -> np.ndarray:
    """(B, F, H, W, ...) -> (B, F, H/4, W/4, 16, ...) row-major patches."""
    b, f, h, w = x.shape[:4]
    x = x.reshape(b, f, h // PATCH, PATCH, w // PATCH, PATCH, *x.shape[4:])
    x = np.moveaxis(x, 3, 4)  # (B, F, h, w, 4, 4, ...)
    return x.reshape(b, f, h // PATCH, w // PATCH, PATCH * PATCH, *x.shape[6:])


def _bits_to_mask(codes: np.ndarray) -> np.ndarray:
    """int (...,) 16-bit codes -> bool (..., 16)."""
    return (codes[..., None] & _BITS) != 0


class ShapesTokenizer(VisualTokenizer):
    """uint8 (B, F, H, W, 3) <-> long (B, F, H/4, W/4); ids in [0, 1 + C * (M - 1))."""

    def __init__(self, masks: torch.Tensor, fingerprint: str) -> None:
        codes = masks.long().numpy()
        if codes.ndim != 1 or codes[0] != 0 or len(np.unique(codes)) != len(codes):
            raise ValueError(
                f"masks: expected distinct 16-bit mask codes with the empty mask first, got {codes[:4]}..."
            )
        self.masks = masks.long()
        self._fp = fingerprint
        m = len(codes)
        # Nearest codebook mask (Hamming) for each of the 2^16 possible patch masks.
        every = _bits_to_mask(np.arange(1 << 16)).astype(np.float32)  # (65536, 16)
        book = _bits_to_mask(codes).astype(np.float32)  # (M, 16)
        ham = every.sum(1, keepdims=True) + book.sum(1) - 2 * every @ book.T  # (65536, M)
        self._lut = ham.argmin(1).astype(np.int64)
        # Decoded patch of every id: background everywhere, colour c on mask m.
        table = np.broadcast_to(PALETTE[0], (1 + NUM_COLOURS * (m - 1), PATCH * PATCH, 3)).copy()
        for c in range(NUM_COLOURS):
            rows = slice(1 + c * (m - 1), 1 + (c + 1) * (m - 1))
            table[rows][book[1:].astype(bool)] = PALETTE[1 + c]
        self._table = table  # uint8 (K, 16, 3)

    @property
    def vocab_size(self) -> int:
        return len(self._table)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        if height % PATCH or width % PATCH:
            raise ValueError(
                f"frame size: expected height and width divisible by {PATCH}, got {height}x{width}"
            )
        return num_frames, height // PATCH, width // PATCH

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """video uint8 (B, F, H, W, 3) -> ids long (B, F, H/4, W/4)."""
        self.validate_video(video)
        self.latent_shape(*video.shape[1:4])
        labels = _patchify(palette_labels(video.numpy())[0])  # (B, F, h, w, 16)
        mask_idx = self._lut[((labels > 0) * _BITS).sum(-1)]  # (B, F, h, w)
        counts = np.stack(
            [(labels == c + 1).sum(-1) for c in range(NUM_COLOURS)], -1
        )  # (B, F, h, w, C)
        colour = counts.argmax(-1)  # majority foreground colour of the patch
        m = len(self.masks)
        ids = np.where(mask_idx == 0, 0, 1 + colour * (m - 1) + mask_idx - 1)
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids long (B, T, h, w) -> video uint8 (B, T, 4h, 4w, 3)."""
        self.validate_ids(ids)
        b, t, h, w = ids.shape
        patches = self._table[ids.long().numpy()].reshape(b, t, h, w, PATCH, PATCH, 3)
        video = np.moveaxis(patches, 4, 3).reshape(b, t, h * PATCH, w * PATCH, 3)
        return torch.from_numpy(np.ascontiguousarray(video))

    def codebook_embeddings(self) -> torch.Tensor:
        """float (K, 48): decoded patches / 255, centred on the codebook mean (see the module docstring)."""
        rows = self._table.reshape(len(self._table), -1).astype(np.float32) / 255.0
        return torch.from_numpy(rows - rows.mean(0))

    def fingerprint(self) -> str:
        return self._fp


def fit_masks(
    videos: np.ndarray, num_masks: int, seed: int, iters: int = 50, progress: bool = False
) -> torch.Tensor:
    """Weighted k-means over the patch masks of real uint8 (N, F, H, W, 3) videos.

    Returns long (num_masks,) 16-bit mask codes: the empty mask, then num_masks - 1 centroids
    snapped to their nearest observed mask (deterministic in `seed`)."""
    labels = _patchify(palette_labels(videos)[0])
    codes, counts = np.unique(((labels > 0) * _BITS).sum(-1).ravel(), return_counts=True)
    keep = codes != 0
    codes, counts = codes[keep], counts[keep]
    k = num_masks - 1
    if len(codes) <= k:  # fewer distinct masks than codes: the codebook is exact
        return torch.from_numpy(np.concatenate([[0], codes]).astype(np.int64))
    x = torch.from_numpy(_bits_to_mask(codes).astype(np.float64))  # (U, 16)
    w = torch.from_numpy(counts.astype(np.float64))
    gen = torch.Generator().manual_seed(seed)
    centres = x[torch.multinomial(w, 1, generator=gen)]  # k-means++ seeding, weighted by counts
    for _ in range(k - 1):
        d2 = torch.cdist(x, centres).min(1).values ** 2
        centres = torch.cat([centres, x[torch.multinomial(w * d2 + 1e-12, 1, generator=gen)]])
    for _ in tqdm(range(iters), disable=not progress, desc="k-means"):
        assign = torch.cdist(x, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x * w[:, None])
        mass = torch.zeros(k, dtype=x.dtype).index_add_(0, assign, w)
        centres = torch.where(mass[:, None] > 0, sums / mass.clamp_min(1e-12)[:, None], centres)
    snapped = torch.cdist(centres, x).argmin(1).unique()  # nearest observed mask per centroid
    if (
        len(snapped) < k
    ):  # two centroids snapped to one mask: top up with the most frequent others, keeping K fixed
        spare = [
            i
            for i in torch.argsort(w, descending=True, stable=True).tolist()
            if i not in set(snapped.tolist())
        ]
        snapped = (
            torch.cat([snapped, torch.tensor(spare[: k - len(snapped)], dtype=torch.long)])
            .sort()
            .values
        )
    return torch.cat([torch.zeros(1, dtype=torch.long), torch.from_numpy(codes)[snapped]])


def load_or_fit_tokenizer(
    cache_dir: str | Path | None = None,
    world_cfg: WorldConfig | None = None,
    codebook_size: int = 509,
    seed: int = 0,
    fit_clips: int = 512,
    progress: bool = False,
) -> ShapesTokenizer:
    """The fitted tokenizer for `world_cfg`, from `cache_dir` (default .cache/shapes or
    $URSA_CACHE/shapes) or fitted on `fit_clips` train-suite clips and cached.

    codebook_size K must be 1 + C * (M - 1) for some M >= 2 (C = 4 colours): 509 <-> M = 128."""
    world_cfg = world_cfg or WorldConfig()
    if codebook_size < 1 + NUM_COLOURS or (codebook_size - 1) % NUM_COLOURS:
        raise ValueError(
            f"codebook_size: expected 1 + {NUM_COLOURS} * (M - 1) with M >= 2 (e.g. 509), got {codebook_size}"
        )
    num_masks = 1 + (codebook_size - 1) // NUM_COLOURS
    fp = fingerprint(
        {
            "kind": "tokenizer",
            "world": asdict(world_cfg),
            "K": codebook_size,
            "seed": seed,
            "fit_clips": fit_clips,
        }
    )
    path = Path(cache_dir or default_cache_dir()) / f"tokenizer-{fp}.safetensors"

    def build() -> dict[str, torch.Tensor]:
        _, videos = make_training_set(world_cfg, fit_clips, seed)
        return {"masks": fit_masks(videos.numpy(), num_masks, seed, progress=progress)}

    return ShapesTokenizer(load_or_build(path, fp, ("masks",), build)["masks"], fp)
