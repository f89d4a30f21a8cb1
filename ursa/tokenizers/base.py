"""The visual tokenizer interface every URSA component programs against.

A visual tokenizer maps uint8 RGB video to a grid of discrete ids in [0, K) and back, and
exposes the codebook embeddings whose distances define the metric path. Real tokenizers
(Cosmos FSQ, IBQ) and the embedded shapes-benchmark tokenizer implement the same interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch

from ursa.tensor_checks import check_ids, check_tensor


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
        check_tensor(name, video, torch.uint8, ("B", "F", "H", "W", 3))

    def validate_ids(self, ids: torch.Tensor, name: str = "ids") -> None:
        """Raise ValueError unless `ids` is an int64/int32 (B, T, h, w) grid with values in [0, K)."""
        check_ids(name, ids, self.vocab_size, ("B", "T", "h", "w"))


def load_strict(
    model: torch.nn.Module, weights: Path, dtype: torch.dtype, device: str | torch.device | None
) -> None:
    """Load the safetensors file `weights` into `model` (built on the meta device) in `dtype` on
    `device`, strictly: one error naming every missing, unexpected and mis-shaped tensor."""
    from safetensors.torch import load_file

    state = load_file(str(weights), device=str(device or "cpu"))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = [f"missing {k!r}" for k in sorted(set(expected) - set(state))]
    problems += [f"unexpected {k!r}" for k in sorted(set(state) - set(expected))]
    problems += [
        f"{k!r} has shape {tuple(state[k].shape)}, the config implies {expected[k]}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != expected[k]
    ]
    if problems:
        raise ValueError(
            f"{str(weights)!r}: expected the weights its config implies (a VAE's vae/config.json), got "
            f"{len(problems)} problems: "
            + "; ".join(problems[:8])
            + (" ..." if len(problems) > 8 else "")
        )
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
