"""Write samples in the layout each external benchmark reads.

All writers take uint8 tensors, write each file atomically (`ursa.io`) and write
`export.json` last, so a folder without it is an interrupted export, never a complete one.

- VBench standard: `{out}/{dimension}/{prompt}-{i}.mp4`, 5 samples per prompt.
- VBench custom input: `{out}/{prompt}-{i}.mp4` + `prompts.json` (file name -> prompt).
- VBench-I2V: `{out}/{prompt}-{i}.mp4` (prompts of the I2V image suite), 5 per prompt.
- VBench-I2V, custom inputs: `{out}/videos/clip{n}[ <camera phrase>]-0.mp4`, `{out}/images/...png`
  (the given first frames) and `{out}/i2v_info.json`, the info file the evaluator reads.
- DPG-Bench: `{out}/{prompt_id}.png`, the 4 samples of a prompt tiled 2x2.
- torch-fidelity: `{out}/{index:06d}.png`, one image per sample (or per frame).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from PIL import Image

from ursa.io import atomic_write, atomic_write_json
from ursa.tensor_checks import check_tensor

MANIFEST = "export.json"
_MAX_NAME_BYTES = 255  # common filesystem limit on one path component


def _check_videos(videos: torch.Tensor, name: str = "videos") -> np.ndarray:
    check_tensor(name, videos, torch.uint8, ("N", "F", "H", "W", 3))
    return videos.cpu().numpy()


def _video_name(prompt: str, index: int, suffix: str = ".mp4") -> str:
    name = f"{prompt}-{index}{suffix}"
    if "/" in prompt or "\0" in prompt or not prompt.strip():
        raise ValueError(
            f"prompt {prompt!r}: expected non-empty text without '/' or NUL "
            "(VBench uses the prompt itself as the file name)"
        )
    if len(name.encode()) > _MAX_NAME_BYTES:
        raise ValueError(
            f"prompt {prompt[:40]!r}...: file name {len(name.encode())} bytes, "
            f"expected <= {_MAX_NAME_BYTES}"
        )
    return name


def _sample_indices(prompts: list[str], n: int, per_prompt: int | None) -> list[int]:
    """Index i of each video among the samples of its prompt (0, 1, ... in order of appearance)."""
    if len(prompts) != n:
        raise ValueError(f"prompts: expected one per video ({n}), got {len(prompts)}")
    counts = Counter(prompts)
    if per_prompt is not None:
        bad = {p: c for p, c in counts.items() if c != per_prompt}
        if bad:
            p, c = next(iter(bad.items()))
            raise ValueError(
                f"prompts: expected {per_prompt} samples per prompt, got {c} for "
                f"{p!r} ({len(bad)} prompt(s) wrong)"
            )
    seen: Counter[str] = Counter()
    indices = []
    for p in prompts:
        indices.append(seen[p])
        seen[p] += 1
    return indices


def write_video(frames: np.ndarray, path: Path, fps: float = 8, *, lossless: bool = False) -> None:
    """Encode uint8 (F,H,W,3) to H.264 mp4 atomically. Default: yuv420p (what generators ship; H and
    W must be even). lossless: libx264rgb at crf 0, which cv2 and decord decode to the exact
    pixels, so a scorer measures the samples rather than codec artefacts (chroma subsampling alone
    moves VBench's temporal flickering by up to 0.05 on 16x16 clips)."""
    if not lossless and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ValueError(f"{path.name}: H and W must be even for yuv420p, got {frames.shape[1:3]}")
    codec = (
        dict(codec="libx264rgb", quality=None, pixelformat="rgb24", output_params=["-crf", "0"])
        if lossless
        else dict(codec="libx264", quality=9, pixelformat="yuv420p")
    )

    def encode(tmp: Path) -> None:
        with imageio.get_writer(
            tmp, fps=fps, macro_block_size=1, format="FFMPEG", **codec
        ) as writer:
            for frame in frames:
                writer.append_data(frame)

    atomic_write(path, encode, suffix=".tmp" + path.suffix)  # ffmpeg picks the container from it


def _write_png(image: np.ndarray, path: Path) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def _write_manifest(out_dir: Path, record: dict) -> None:
    atomic_write_json(out_dir / MANIFEST, record)


def video_names(prompts: list[str], per_prompt: int | None = None) -> list[str]:
    """`{prompt}-{i}.mp4` of each video, in video order (i counts the samples of one prompt)."""
    return [
        _video_name(p, i)
        for p, i in zip(prompts, _sample_indices(prompts, len(prompts), per_prompt))
    ]


def _write_prompt_videos(
    videos: np.ndarray,
    prompts: list[str],
    out_dir: Path,
    fps: float,
    per_prompt: int | None,
    lossless: bool = False,
) -> dict[str, str]:
    _sample_indices(prompts, len(videos), per_prompt)  # one prompt per video
    names = video_names(prompts, per_prompt)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    for video, name in zip(videos, names):
        write_video(video, out_dir / name, fps=fps, lossless=lossless)
    return dict(zip(names, prompts))


def export_vbench_standard(
    videos: torch.Tensor,
    prompts: list[str],
    out_dir: Path | str,
    dimension: str,
    *,
    samples_per_prompt: int = 5,
    fps: float = 8,
    lossless: bool = False,
) -> Path:
    """videos uint8 (N,F,H,W,3), prompts[n] = prompt of video n -> `{out}/{dimension}/{prompt}-{i}.mp4`.

    Each prompt must appear exactly `samples_per_prompt` times (VBench averages over 5).
    Returns the dimension folder (pass it as videos_path for that dimension).
    """
    array = _check_videos(videos)
    folder = Path(out_dir) / dimension
    files = _write_prompt_videos(array, prompts, folder, fps, samples_per_prompt, lossless)
    _write_manifest(
        folder,
        {
            "layout": "vbench_standard",
            "dimension": dimension,
            "fps": fps,
            "lossless": lossless,
            "samples_per_prompt": samples_per_prompt,
            "files": files,
        },
    )
    return folder


def export_vbench_custom(
    videos: torch.Tensor,
    prompts: list[str],
    out_dir: Path | str,
    *,
    fps: float = 8,
    lossless: bool = False,
) -> Path:
    """videos uint8 (N,F,H,W,3) -> `{out}/{prompt}-{i}.mp4` + `prompts.json` for custom_input mode."""
    array = _check_videos(videos)
    folder = Path(out_dir)
    files = _write_prompt_videos(array, prompts, folder, fps, None, lossless)
    atomic_write_json(folder / "prompts.json", files)
    _write_manifest(
        folder, {"layout": "vbench_custom", "fps": fps, "lossless": lossless, "files": files}
    )
    return folder


def export_vbench_i2v(
    videos: torch.Tensor,
    prompts: list[str],
    out_dir: Path | str,
    *,
    samples_per_prompt: int = 5,
    fps: float = 8,
) -> Path:
    """videos uint8 (N,F,H,W,3) conditioned on the I2V suite images -> `{out}/{prompt}-{i}.mp4`."""
    array = _check_videos(videos)
    folder = Path(out_dir)
    files = _write_prompt_videos(array, prompts, folder, fps, samples_per_prompt)
    _write_manifest(
        folder,
        {
            "layout": "vbench_i2v",
            "fps": fps,
            "samples_per_prompt": samples_per_prompt,
            "files": files,
        },
    )
    return folder


I2V_INFO = "i2v_info.json"


def i2v_clip_name(n: int, caption: str) -> str:
    """The `prompt_en` of clip n in the I2V info file (its video is `{name}-0.mp4`): `clip{n:05d}`,
    followed by the caption's camera-motion phrase when it has one ("clip00003 camera pans left"),
    because VBench-I2V's camera_motion reads the motion asked for from the video's file name."""
    from benchmarks.official.vbench_eval import camera_phrase

    phrase = camera_phrase(caption)
    return f"clip{n:05d}" + (f" {phrase}" if phrase else "")


def export_vbench_i2v_custom(
    videos: torch.Tensor,
    first_frames: torch.Tensor,
    captions: list[str],
    out_dir: Path | str,
    dimensions: list[str],
    *,
    fps: float = 8,
    lossless: bool = False,
) -> Path:
    """VBench-I2V on custom inputs: videos uint8 (N,F,H,W,3) generated from first_frames uint8
    (N,H,W,3) (the given images) -> `{out}/videos/{name}-0.mp4`, `{out}/images/{name}.png` (name:
    `i2v_clip_name`, with the caption's camera-motion phrase) and `{out}/i2v_info.json`, the info
    file vbench2_beta_i2v reads in place of its own suite's: one entry per clip, {"prompt_en": name
    (the evaluator finds `{prompt_en}-{i}.mp4`),
    "caption", "dimension": dimensions, "image_name": absolute path of the image (the evaluator
    joins it to its own image folder, which an absolute path overrides)}. Returns `{out}`.

    Videos sit alone in `videos/`: the evaluator takes the file suffix from the folder's first entry.
    """
    array = _check_videos(videos)
    check_tensor("first_frames", first_frames, torch.uint8, (array.shape[0], "H", "W", 3))
    if len(captions) != len(array):
        raise ValueError(f"captions: expected one per video ({len(array)}), got {len(captions)}")
    folder = Path(out_dir).resolve()
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    entries = []
    for n, (video, image, caption) in enumerate(zip(array, first_frames.cpu().numpy(), captions)):
        clip = i2v_clip_name(n, caption)
        write_video(video, folder / "videos" / f"{clip}-0.mp4", fps=fps, lossless=lossless)
        _write_png(image, folder / "images" / f"{clip}.png")
        entries.append(
            {
                "prompt_en": clip,
                "caption": caption,
                "dimension": list(dimensions),
                "image_name": str(folder / "images" / f"{clip}.png"),
            }
        )
    atomic_write_json(folder / I2V_INFO, entries)
    _write_manifest(
        folder,
        {
            "layout": "vbench_i2v_custom",
            "fps": fps,
            "lossless": lossless,
            "clips": len(entries),
            "dimensions": list(dimensions),
        },
    )
    return folder


def tile_2x2(images: np.ndarray) -> np.ndarray:
    """uint8 (4,H,W,3) -> (2H,2W,3): [[0,1],[2,3]], the grid DPG-Bench cuts back into 4 tiles."""
    top = np.concatenate([images[0], images[1]], axis=1)
    bottom = np.concatenate([images[2], images[3]], axis=1)
    return np.concatenate([top, bottom], axis=0)


def export_dpg(images: torch.Tensor, prompt_ids: list[str], out_dir: Path | str) -> Path:
    """images uint8 (N,4,H,W,3), 4 samples of prompt prompt_ids[n] -> `{out}/{prompt_id}.png`."""
    check_tensor("images", images, torch.uint8, ("N", 4, "H", "W", 3))
    if len(prompt_ids) != len(images) or len(set(prompt_ids)) != len(prompt_ids):
        raise ValueError(
            f"prompt_ids: expected {len(images)} unique ids, got {len(prompt_ids)} "
            f"({len(set(prompt_ids))} unique)"
        )
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    array = images.cpu().numpy()
    for tiles, pid in zip(array, prompt_ids):
        _write_png(tile_2x2(tiles), folder / f"{pid}.png")
    _write_manifest(folder, {"layout": "dpg_bench", "tile": "2x2", "prompt_ids": prompt_ids})
    return folder


def export_image_folder(samples: torch.Tensor, out_dir: Path | str, *, frames: str = "all") -> Path:
    """uint8 images (N,H,W,3) or videos (N,F,H,W,3) -> `{out}/{index:06d}.png` for torch-fidelity.

    frames: for videos, "all" writes every frame, "first" only frame 0.
    """
    if frames not in ("all", "first"):
        raise ValueError(f"frames: expected 'all' or 'first', got {frames!r}")
    if (
        not isinstance(samples, torch.Tensor)
        or samples.dtype != torch.uint8
        or samples.ndim not in (4, 5)
        or samples.shape[-1] != 3
    ):
        got = (
            f"{samples.dtype} {tuple(samples.shape)}"
            if isinstance(samples, torch.Tensor)
            else type(samples).__name__
        )
        raise ValueError(f"samples: expected uint8 (N,H,W,3) or (N,F,H,W,3), got {got}")
    if samples.ndim == 5:
        samples = samples[:, :1] if frames == "first" else samples
        samples = samples.flatten(0, 1)  # (N*F,H,W,3)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    for i, image in enumerate(samples.cpu().numpy()):
        _write_png(image, folder / f"{i:06d}.png")
    _write_manifest(folder, {"layout": "image_folder", "count": int(samples.shape[0])})
    return folder
