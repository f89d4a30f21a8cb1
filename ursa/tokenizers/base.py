"""The visual tokenizer interface every URSA component programs against.

A visual tokenizer maps uint8 RGB video to a grid of discrete ids in [0, K) and back, and
exposes the codebook embeddings whose distances define the metric path. Real tokenizers
(Cosmos FSQ, IBQ) and the embedded shapes-benchmark tokenizer implement the same interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class VisualTokenizer(ABC):
    """Abstract visual tokenizer.

    Shapes: video uint8 (B, F, H, W, 3) <-> ids long (B, T, h, w) with
    (T, h, w) = latent_shape(F, H, W) and ids in [0, vocab_size).
    """

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """K, the number of codebook entries (visual ids)."""

    @abstractmethod
    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(T, h, w) of the id grid for a video of (F, H, W) pixels."""

    @abstractmethod
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """video uint8 (B, F, H, W, 3) -> ids long (B, T, h, w)."""

    @abstractmethod
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids long (B, T, h, w) -> video uint8 (B, F, H, W, 3)."""

    @abstractmethod
    def codebook_embeddings(self) -> torch.Tensor:
        """float (K, D) embeddings; distances between rows carry visual similarity."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A short stable hash of everything that determines encode/decode (for run ids)."""

    def validate_video(self, video: torch.Tensor, name: str = "video") -> None:
        """Raise ValueError unless `video` is uint8 (B, F, H, W, 3)."""
        if not isinstance(video, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor uint8 (B, F, H, W, 3), got {type(video).__name__}")
        if video.dtype != torch.uint8 or video.dim() != 5 or video.shape[-1] != 3:
            raise ValueError(
                f"{name}: expected uint8 tensor of shape (B, F, H, W, 3), "
                f"got {video.dtype} of shape {tuple(video.shape)}"
            )

    def validate_ids(self, ids: torch.Tensor, name: str = "ids") -> None:
        """Raise ValueError unless `ids` is an integer (B, T, h, w) grid with values in [0, K)."""
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32) or ids.dim() != 4:
            got = f"{ids.dtype} of shape {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"{name}: expected an integer tensor of shape (B, T, h, w), got {got}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError(
                f"{name}: expected ids in [0, {self.vocab_size}), got values in "
                f"[{int(ids.min())}, {int(ids.max())}]"
            )
