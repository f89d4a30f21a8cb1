"""A small CNN feature extractor trained on the shapes world's real frames.

It is trained (deterministically, in seconds on CPU) to read every frame's generative factors:
per colour, presence, shape, size and centroid. Its 64-d penultimate activations therefore
encode what the world varies in (including position, which carries motion at clip level), and
serve as the feature space for FID / KID / precision-recall, like Inception for natural images.
Weights are cached on disk with a fingerprint, like the tokenizer.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from benchmarks.shapes.cache import default_cache_dir, fingerprint, load_or_build
from benchmarks.shapes.world import (
    COLOUR_NAMES,
    MOTIONS,
    SHAPES,
    SIZES,
    Scene,
    WorldConfig,
    offsets,
    render,
    sample_scene,
)

FEATURE_DIM = 64
_C = len(COLOUR_NAMES)
_HEAD = 1 + len(SHAPES) + len(SIZES) + 2  # presence, shape logits, size logits, centre (x, y)


class FrameNet(nn.Module):
    """uint8 (B, 3, H, W) -> features float (B, 64); `heads` maps features to factor logits."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=4),
            nn.ReLU(),  # one cell per 4x4 patch: H/4
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),  # H/8
            nn.Flatten(),
            nn.Linear(32 * (height // 8) * (width // 8), FEATURE_DIM),
        )
        self.heads = nn.Linear(FEATURE_DIM, _C * _HEAD)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.body(frames.float() / 127.5 - 1.0)


def _targets(scenes: list[Scene], cfg: WorldConfig) -> torch.Tensor:
    """float (N*F, C, 5) per frame and colour: presence, shape, size, centre x / W, centre y / H."""
    t = np.zeros((len(scenes), cfg.frames, _C, 5))
    for i, scene in enumerate(scenes):
        for o in scene:
            c = COLOUR_NAMES.index(o.spec.colour)
            side = SIZES[o.spec.size]
            off = offsets(o.spec.motion, cfg)
            t[i, :, c, 0] = 1
            t[i, :, c, 1] = SHAPES.index(o.spec.shape)
            t[i, :, c, 2] = list(SIZES).index(o.spec.size)
            t[i, :, c, 3] = (o.x + off[:, 0] + side / 2) / cfg.width
            t[i, :, c, 4] = (o.y + off[:, 1] + side / 2) / cfg.height
    return torch.from_numpy(t.reshape(-1, _C, 5)).float()


def _loss(net: FrameNet, frames: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    out = net.heads(F.relu(net(frames))).view(-1, _C, _HEAD)
    present = target[..., 0]
    loss = F.binary_cross_entropy_with_logits(out[..., 0], present)
    on = present > 0
    s = 1 + len(SHAPES)
    loss = loss + F.cross_entropy(out[..., 1:s][on], target[..., 1][on].long())
    loss = loss + F.cross_entropy(out[..., s : s + len(SIZES)][on], target[..., 2][on].long())
    return loss + 10 * F.mse_loss(out[..., -2:][on], target[..., 3:5][on])


def train_frame_net(
    cfg: WorldConfig,
    seed: int = 0,
    clips: int = 256,
    steps: int = 250,
    batch: int = 64,
    progress: bool = False,
) -> FrameNet:
    """Train FrameNet on all frames of `clips` random scenes of the whole world (held-out
    combinations included: it is a measuring instrument, not the model); deterministic in `seed`."""
    rng = np.random.default_rng([seed, 7])
    scenes = [sample_scene(rng, cfg) for _ in range(clips)]
    frames = (
        torch.from_numpy(np.stack([render(s, cfg) for s in scenes]))
        .flatten(0, 1)
        .permute(0, 3, 1, 2)
        .contiguous()
    )  # (N*F, 3, H, W)
    target = _targets(scenes, cfg)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = FrameNet(cfg.height, cfg.width)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # tiny convs: thread sync costs more than it saves, badly so on shared cores
    try:
        for _ in tqdm(range(steps), disable=not progress, desc="feature extractor"):
            idx = torch.randint(len(frames), (batch,), generator=gen)
            opt.zero_grad()
            _loss(net, frames[idx], target[idx]).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def load_or_train_extractor(
    cache_dir: str | Path | None, cfg: WorldConfig, seed: int = 0, progress: bool = False
) -> tuple[FrameNet, Path]:
    """(trained FrameNet, its weights file) for frames of `cfg`'s size, from cache or trained and cached."""
    frame_cfg = WorldConfig(height=cfg.height, width=cfg.width)  # only the frame size matters
    fp = fingerprint(
        {
            "kind": "extractor",
            "world": asdict(frame_cfg),
            "seed": seed,
            "dim": FEATURE_DIM,
            "motions": list(MOTIONS),
        }
    )
    path = Path(cache_dir or default_cache_dir()) / f"extractor-{fp}.safetensors"
    weights = load_or_build(
        path,
        fp,
        ("heads.weight",),
        lambda: dict(train_frame_net(frame_cfg, seed, progress=progress).state_dict()),
    )
    return load_frame_net(weights, frame_cfg.height, frame_cfg.width), path


def load_frame_net(weights: dict[str, torch.Tensor], height: int, width: int) -> FrameNet:
    net = FrameNet(height, width)
    net.load_state_dict(weights)
    return net.eval().requires_grad_(False)
