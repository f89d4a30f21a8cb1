"""The tiny training set-up the training tests share: K = 32 visual ids, clips of (2, 4, 4) ids
whose two frames are equal, captions of 4 text ids, the tiny preset."""

from __future__ import annotations

import torch

from ursa.model import URSAConfig, URSAModel
from ursa.train import TokenDataset

K = 32


def dataset(n: int = 5) -> TokenDataset:
    """n clips (an odd n makes batches cross epoch boundaries)."""
    g = torch.Generator().manual_seed(0)
    frame = torch.randint(0, K, (n, 1, 4, 4), generator=g)
    return TokenDataset(
        torch.randint(0, 16, (n, 4), generator=g),
        torch.ones(n, 4, dtype=torch.bool),
        frame.expand(n, 2, 4, 4).contiguous(),
    )


def model(seed: int = 0) -> URSAModel:
    return URSAModel(URSAConfig.preset("tiny", text_vocab_size=16, visual_vocab_size=K), seed=seed)
