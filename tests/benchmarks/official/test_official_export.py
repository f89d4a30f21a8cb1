"""Sample layouts for VBench, VBench-I2V, DPG-Bench and torch-fidelity."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.official.export import (
    MANIFEST,
    export_dpg,
    export_image_folder,
    export_vbench_custom,
    export_vbench_i2v,
    export_vbench_standard,
    tile_2x2,
)


def _grey_videos(levels: list[int], frames: int = 4, size: int = 16) -> torch.Tensor:
    """uint8 (N,F,H,W,3), video n uniformly grey at levels[n]."""
    return (
        torch.tensor(levels, dtype=torch.uint8)
        .view(-1, 1, 1, 1, 1)
        .expand(-1, frames, size, size, 3)
        .clone()
    )


def test_vbench_standard_layout_and_content(tmp_path):
    prompts = ["a cat"] * 5 + ["a dog"] * 5
    levels = [20 * k + 10 for k in range(10)]
    folder = export_vbench_standard(_grey_videos(levels), prompts, tmp_path, "temporal_flickering")
    assert folder == tmp_path / "temporal_flickering"
    names = sorted(p.name for p in folder.glob("*.mp4"))
    assert names == sorted(
        [f"a cat-{i}.mp4" for i in range(5)] + [f"a dog-{i}.mp4" for i in range(5)]
    )
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["samples_per_prompt"] == 5 and manifest["files"]["a dog-2.mp4"] == "a dog"
    # video n is written as "<prompt>-<n mod 5>": "a dog-2" is video 7. H.264 is lossy: +-3 levels.
    frames = np.stack(imageio.mimread(folder / "a dog-2.mp4"))
    assert frames.shape == (4, 16, 16, 3)
    assert abs(float(frames.mean()) - levels[7]) < 3.0


def test_vbench_standard_rejects_wrong_sample_count(tmp_path):
    with pytest.raises(ValueError, match="5 samples per prompt"):
        export_vbench_standard(_grey_videos([0] * 4), ["a cat"] * 4, tmp_path, "scene")
    assert not (tmp_path / "scene").exists()


@pytest.mark.parametrize("prompt", ["a/b", "", "x" * 300])
def test_vbench_rejects_unusable_prompt_names(tmp_path, prompt):
    with pytest.raises(ValueError, match="prompt"):
        export_vbench_custom(_grey_videos([0]), [prompt], tmp_path)


def test_vbench_rejects_bad_tensors(tmp_path):
    with pytest.raises(
        ValueError, match=r"videos: expected uint8 tensor of shape \(N, F, H, W, 3\)"
    ):
        export_vbench_custom(_grey_videos([0]).float(), ["p"], tmp_path)
    with pytest.raises(ValueError, match="even"):
        export_vbench_custom(_grey_videos([0], size=15), ["p"], tmp_path)


def test_vbench_custom_and_i2v_layouts(tmp_path):
    custom = export_vbench_custom(_grey_videos([0, 50, 100]), ["x", "y", "x"], tmp_path / "c")
    assert json.loads((custom / "prompts.json").read_text()) == {
        "x-0.mp4": "x",
        "y-0.mp4": "y",
        "x-1.mp4": "x",
    }
    i2v = export_vbench_i2v(_grey_videos([0] * 5), ["a boat"] * 5, tmp_path / "i")
    assert sorted(p.name for p in i2v.glob("*.mp4")) == [f"a boat-{i}.mp4" for i in range(5)]
    assert json.loads((i2v / MANIFEST).read_text())["layout"] == "vbench_i2v"


def test_dpg_tiles_2x2_in_reading_order(tmp_path):
    images = (
        torch.arange(2 * 4, dtype=torch.uint8)
        .mul(30)
        .view(2, 4, 1, 1, 1)
        .expand(2, 4, 8, 8, 3)
        .clone()
    )
    folder = export_dpg(images, ["17", "abc"], tmp_path)
    grid = np.asarray(Image.open(folder / "abc.png"))  # PNG is lossless: exact equality
    assert grid.shape == (16, 16, 3)
    assert (
        grid[0, 0, 0] == 120
        and grid[0, 8, 0] == 150
        and grid[8, 0, 0] == 180
        and grid[8, 8, 0] == 210
    )
    np.testing.assert_array_equal(
        tile_2x2(images[0].numpy()), np.asarray(Image.open(folder / "17.png"))
    )
    with pytest.raises(ValueError, match="unique ids"):
        export_dpg(images, ["a", "a"], tmp_path)


def test_image_folder_frames(tmp_path):
    g = torch.Generator().manual_seed(0)
    videos = torch.randint(0, 256, (2, 3, 8, 8, 3), generator=g, dtype=torch.uint8)
    every = export_image_folder(videos, tmp_path / "all")
    assert len(list(every.glob("*.png"))) == 6
    np.testing.assert_array_equal(
        np.asarray(Image.open(every / "000004.png")), videos[1, 1].numpy()
    )
    first = export_image_folder(videos, tmp_path / "first", frames="first")
    np.testing.assert_array_equal(
        np.asarray(Image.open(first / "000001.png")), videos[1, 0].numpy()
    )
    assert json.loads((first / MANIFEST).read_text())["count"] == 2
