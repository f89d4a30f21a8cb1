"""Inception FID / KID / IS through torch-fidelity, with the Inception weights read from disk.

torch-fidelity downloads its Inception-v3 weights on first use; offline machines must point it
at a local copy (feature_extractor_weights_path). We look, in order, at the `weights_path`
argument, $URSA_INCEPTION_WEIGHTS, and torch hub's checkpoint folder (where torch-fidelity's own
download lands), and fail with one clear error before any compute when none exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch_fidelity
from torch.utils.data import Dataset

from benchmarks.official.resources import Resource, require

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = (
    f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
)
IS_SPLITS = 10  # torch-fidelity's (and the original IS protocol's) split count
MIN_PER_SPLIT = 10  # images per IS split below which the split count is lowered


def is_splits(n: int) -> int:
    """IS splits for n images: 10, fewer when a split would hold < 10 images (torch-fidelity's
    fixed 10 give NaN below 10 images and exactly 1.0 at 10: one image per split has no spread to
    measure); ValueError below 10 images, where no split is meaningful."""
    if n < MIN_PER_SPLIT:
        raise ValueError(
            f"is.inception: expected at least {MIN_PER_SPLIT} generated images "
            f"(the Inception Score compares each split's predictions with their "
            f"mean; with 10 fixed splits fewer images give NaN, and 10 give exactly "
            f"1.0), got {n}"
        )
    return min(IS_SPLITS, n // MIN_PER_SPLIT)


def inception_weights_path(weights_path: Path | str | None = None) -> Path:
    """Where the Inception weights are expected (argument > $URSA_INCEPTION_WEIGHTS > torch hub)."""
    if weights_path:
        return Path(weights_path)
    if os.environ.get("URSA_INCEPTION_WEIGHTS"):
        return Path(os.environ["URSA_INCEPTION_WEIGHTS"])
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


class ImageTensorDataset(Dataset):
    """uint8 (N,H,W,3) -> items uint8 (3,H,W), the form torch-fidelity accepts."""

    def __init__(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"images: expected uint8 (N,H,W,3), got {images.dtype} {tuple(images.shape)}"
            )
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i].permute(2, 0, 1).contiguous()


def _as_input(x: Path | str | torch.Tensor, name: str) -> tuple[str | Dataset, int]:
    if isinstance(x, torch.Tensor):
        return ImageTensorDataset(x), x.shape[0]
    folder = Path(x)
    files = [p for p in folder.glob("*.png")] if folder.is_dir() else []
    if not files:
        raise ValueError(
            f"{name}: expected a folder of .png images (export_image_folder) or a "
            f"uint8 tensor (N,H,W,3), got {folder} with no .png files"
        )
    return str(folder), len(files)


def inception_metrics(
    generated: Path | str | torch.Tensor,
    reference: Path | str | torch.Tensor | None = None,
    *,
    fid: bool = True,
    kid: bool = True,
    isc: bool = True,
    weights_path: Path | str | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """FID/KID between generated and reference, IS of generated.

    Returns torch-fidelity's keys: frechet_inception_distance, kernel_inception_distance_mean/
    _std, inception_score_mean/_std (those requested), and n_generated / n_reference (images),
    is_splits, kid_subsets. Small samples: IS uses `is_splits(n)` splits; KID with both sets no
    larger than kid_subset_size draws one subset, the whole sets (torch-fidelity's 100 would all
    be that same set: the spread it reports would be 0, not a spread). No cache is written.
    """
    if (fid or kid) and reference is None:
        raise ValueError("reference: FID/KID need a reference set, got None")
    if not (fid or kid or isc):
        raise ValueError("fid/kid/isc: expected at least one metric, got none")
    weights = inception_weights_path(weights_path)
    require(
        "Inception-v3 (torch-fidelity) weights",
        [
            Resource(
                weights,
                f"download {INCEPTION_URL} there, or set $URSA_INCEPTION_WEIGHTS / weights_path",
            )
        ],
    )
    input1, n1 = _as_input(generated, "generated")
    kwargs: dict = {}
    counts: dict[str, float] = {"n_generated": n1}
    if isc:
        kwargs["isc_splits"] = counts["is_splits"] = is_splits(n1)
    if reference is not None and (fid or kid):
        kwargs["input2"], n2 = _as_input(reference, "reference")
        counts["n_reference"] = n2
        kwargs["kid_subset_size"] = min(kid_subset_size, n1, n2)
        # every subset is then both whole sets (a permutation of each): one draw is all there is
        whole = kwargs["kid_subset_size"] == max(n1, n2)
        kwargs["kid_subsets"] = counts["kid_subsets"] = 1 if whole else 100
    metrics = torch_fidelity.calculate_metrics(
        input1=input1,
        fid=fid,
        kid=kid,
        isc=isc,
        cuda=device.startswith("cuda"),
        batch_size=batch_size,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(weights),
        rng_seed=seed,
        cache=False,
        verbose=False,
        save_cpu_ram=True,
        **kwargs,
    )
    return {**{k: float(v) for k, v in metrics.items()}, **{k: float(v) for k, v in counts.items()}}
