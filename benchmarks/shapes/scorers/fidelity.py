"""FID / KID / precision-recall through torch-fidelity, in the feature space of the shapes
world's own CNN (scorers.extractor), registered as torch-fidelity feature extractors:

- "shapes-frame": each frame uint8 (3, H, W) -> 64-d features (frame-level metrics);
- "shapes-clip": each clip as uint8 (3F, H, W) -> 128-d [mean over frames, last - first]
  (clip-level metrics: appearance plus displacement, so motion counts).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch_fidelity
from safetensors.torch import load_file
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from benchmarks.shapes.scorers.extractor import FrameNet, load_frame_net


class _ShapesExtractor(FeatureExtractorBase):
    """Loads FrameNet weights from `feature_extractor_weights_path` (a safetensors file)."""

    FEATURE = "frame"

    def __init__(
        self,
        name: str,
        features_list: list[str],
        feature_extractor_weights_path: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(
                f"{name}: expected feature_extractor_weights_path (a FrameNet safetensors file), got None"
            )
        weights = load_file(feature_extractor_weights_path)
        cells = weights["body.5.weight"].shape[1] // 32  # (H/8) * (W/8); square frames
        side = int(round(cells**0.5)) * 8
        self.net: FrameNet = load_frame_net(weights, side, side)

    @classmethod
    def get_provided_features_list(cls) -> tuple[str, ...]:
        return (cls.FEATURE,)

    @classmethod
    def get_default_feature_layer_for_metric(cls, metric: str) -> str:
        return cls.FEATURE

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> None:
        return None


class ShapesFrameExtractor(_ShapesExtractor):
    FEATURE = "frame"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        """uint8 (B, 3, H, W) -> (float (B, 64),)."""
        return (self.net(x).double(),)


class ShapesClipExtractor(_ShapesExtractor):
    FEATURE = "clip"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        """uint8 (B, 3F, H, W) -> (float (B, 128),): mean frame features and last - first."""
        b, c, h, w = x.shape
        feats = self.net(x.reshape(b * c // 3, 3, h, w)).view(b, c // 3, -1)  # (B, F, 64)
        return (torch.cat([feats.mean(1), feats[:, -1] - feats[:, 0]], 1).double(),)


for _name, _cls in (("shapes-frame", ShapesFrameExtractor), ("shapes-clip", ShapesClipExtractor)):
    if _name not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(_name, _cls)


class _Images(Dataset):
    """uint8 (N, C, H, W) tensor as a torch-fidelity input Dataset."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _metrics(
    gen: torch.Tensor, ref: torch.Tensor, extractor: str, weights: Path, seed: int
) -> dict[str, float]:
    n = min(len(gen), len(ref))
    out = torch_fidelity.calculate_metrics(
        input1=_Images(gen),
        input2=_Images(ref),
        cuda=False,
        fid=True,
        kid=True,
        prc=True,
        feature_extractor=extractor,
        feature_extractor_weights_path=str(weights),
        kid_subset_size=min(n, 1000),
        kid_subsets=50,
        batch_size=512,
        rng_seed=seed,
        save_cpu_ram=True,
        cache=False,
        verbose=False,
    )
    return {
        "fid": out["frechet_inception_distance"],
        "kid": out["kernel_inception_distance_mean"],
        "precision": out["precision"],
        "recall": out["recall"],
    }


def score_fidelity(
    videos: torch.Tensor, reference: torch.Tensor, weights: Path, seed: int = 0
) -> dict[str, float]:
    """{fid,kid,precision,recall}_{frame,clip} of uint8 (N, F, H, W, 3) `videos` against
    uint8 (M, F, H, W, 3) real `reference` clips (precision: generated samples inside the real
    manifold; recall: real samples covered)."""
    if len(videos) < 2 or len(reference) < 2:
        raise ValueError(
            f"fidelity: expected >= 2 clips on each side, got {len(videos)} and {len(reference)}"
        )

    def frames(v: torch.Tensor) -> torch.Tensor:
        return v.flatten(0, 1).permute(0, 3, 1, 2).contiguous()  # (N*F, 3, H, W)

    def clips(v: torch.Tensor) -> torch.Tensor:
        return v.permute(0, 1, 4, 2, 3).flatten(1, 2).contiguous()  # (N, F*3, H, W)

    out = {
        f"{k}_frame": v
        for k, v in _metrics(
            frames(videos), frames(reference), "shapes-frame", weights, seed
        ).items()
    }
    if videos.shape[1] > 1:
        out.update(
            {
                f"{k}_clip": v
                for k, v in _metrics(
                    clips(videos), clips(reference), "shapes-clip", weights, seed
                ).items()
            }
        )
    return out
