"""Decode one media file into a fixed-geometry clip: frame selection, resize, centre crop.

Videos (mp4, webm, mkv, mov, avi) are read through imageio's ffmpeg plug-in, which streams
frames from an ffmpeg subprocess, so only the frames a clip needs are decoded; GIFs and still
images (png, jpg) through Pillow. Every way a file can be unusable raises `BadClip` with a
reason a user can act on ("too few frames: ..."), never a library traceback: the caller records
the reason in skipped.jsonl and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageSequence

from harness.plugins import BadClip

VIDEO_EXTS = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v")
GIF_EXTS = (".gif",)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MEDIA_EXTS = VIDEO_EXTS + GIF_EXTS + IMAGE_EXTS


@dataclass(frozen=True)
class ClipSpec:
    """How a file becomes a clip: `frames` frames taken every `stride` source frames, or at `fps`
    when set (source frames nearest to i / fps seconds), resized to cover (height, width) and
    centre-cropped (`fit` "crop") or stretched to it (`fit` "resize"). A still image is repeated
    `frames` times (`images` "repeat") or refused (`images` "skip")."""

    frames: int
    height: int
    width: int
    stride: int = 1
    fps: float | None = None
    fit: Literal["crop", "resize"] = "crop"
    images: Literal["repeat", "skip"] = "repeat"


def _source_indices(spec: ClipSpec, source_fps: float | None) -> list[int]:
    """Source frame index of each of the clip's frames."""
    if spec.fps is None:
        return [i * spec.stride for i in range(spec.frames)]
    if not source_fps or source_fps <= 0:
        raise BadClip(
            "no frame rate in the file's metadata, so benchmark.fps cannot be applied (use frame_stride)"
        )
    return [int(round(i * source_fps / spec.fps)) for i in range(spec.frames)]


def fit_frame(frame: np.ndarray, spec: ClipSpec) -> np.ndarray:
    """uint8 (h, w, 3) -> uint8 (height, width, 3): bicubic resize, then centre crop for "crop"."""
    img = Image.fromarray(frame)
    if spec.fit == "resize":
        img = img.resize((spec.width, spec.height), Image.Resampling.BICUBIC)
        return np.asarray(img, dtype=np.uint8)
    w, h = img.size
    scale = max(spec.width / w, spec.height / h)  # cover the target, then cut the overhang
    rw, rh = max(spec.width, round(w * scale)), max(spec.height, round(h * scale))
    img = img.resize((rw, rh), Image.Resampling.BICUBIC)
    left, top = (rw - spec.width) // 2, (rh - spec.height) // 2
    return np.asarray(img.crop((left, top, left + spec.width, top + spec.height)), dtype=np.uint8)


def _rgb(frame: np.ndarray) -> np.ndarray:
    """Any decoded frame (grey, RGBA, RGB) -> uint8 (h, w, 3)."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, -1)
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


def _pick(frames, indices: list[int]) -> list[np.ndarray]:
    """The frames at `indices` (ascending) from an iterator of frames, reading no further than needed."""
    wanted, out, last = set(indices), {}, max(indices)
    count = 0
    for i, frame in enumerate(frames):
        count = i + 1
        if i in wanted:
            out[i] = _rgb(frame)
        if i >= last:
            break
    if len(out) < len(wanted):
        # counted one way (frames 1..n): the clip's last frame is source frame last + 1
        raise BadClip(
            f"too few frames: the file has {count}, the clip needs {last + 1} "
            f"(its {len(indices)} frames reach source frame {last + 1} of the file)"
        )
    return [out[i] for i in indices]


def _read_video(path: Path, spec: ClipSpec) -> list[np.ndarray]:
    import imageio.v2 as iio

    try:
        reader = iio.get_reader(path, format="FFMPEG")
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a property of the file
        raise BadClip(
            f"unreadable video ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
        ) from None
    try:
        indices = _source_indices(spec, reader.get_meta_data().get("fps"))
        try:
            return _pick(reader, indices)
        except BadClip:
            raise
        except Exception as exc:  # noqa: BLE001 - truncated streams fail mid-read
            raise BadClip(
                f"unreadable video, decoding stopped ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:160] if str(exc) else ''})"
            ) from None
    finally:
        reader.close()


def _read_gif(path: Path, spec: ClipSpec) -> list[np.ndarray]:
    with Image.open(path) as img:
        duration = img.info.get("duration")  # milliseconds per frame
        indices = _source_indices(spec, 1000.0 / duration if duration else None)
        return _pick((f.convert("RGB") for f in ImageSequence.Iterator(img)), indices)


def _read_image(path: Path, spec: ClipSpec) -> list[np.ndarray]:
    if spec.images == "skip" and spec.frames > 1:
        raise BadClip(
            f"a still image has 1 frame, the clip needs {spec.frames} (benchmark.images is 'skip')"
        )
    with Image.open(path) as img:
        frame = _rgb(np.asarray(img.convert("RGB")))
    return [frame] * spec.frames


READERS = {
    **dict.fromkeys(VIDEO_EXTS, _read_video),
    **dict.fromkeys(GIF_EXTS, _read_gif),
    **dict.fromkeys(IMAGE_EXTS, _read_image),
}


def read_clip(path: str | Path, spec: ClipSpec) -> np.ndarray:
    """uint8 (F, H, W, 3) clip of the file at `path`; raises BadClip(reason) if it cannot be one."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise BadClip(
            f"unsupported file type {path.suffix!r} (expected one of {', '.join(MEDIA_EXTS)})"
        )
    try:
        frames = reader(path, spec)
    except BadClip:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow / ffmpeg errors on damaged files
        raise BadClip(
            f"unreadable file ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
        ) from None
    return np.stack([fit_frame(f, spec) for f in frames])
