"""The video-folder benchmark and its no-weights tokenizers, registered as harness plug-ins.

A folder of videos and images plus a caption manifest (benchmarks/video_folder/manifest.py)
becomes training data and evaluation suites. The benchmark streams (`streams = True`): its
training clips are decoded once into token shards by harness.token_shards and read lazily while
training (ursa.shards), so the folder may be far larger than memory. Bad items are skipped with a
reason (skipped.jsonl in the shard directory); a folder with nothing usable is a spec error.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from benchmarks.video_folder.decode import ClipSpec, read_clip
from benchmarks.video_folder.manifest import Entry, ManifestError, file_signature, read_manifest
from benchmarks.video_folder.prompts import REAL_TASKS, VideoPrompt, condition_frames, read_prompts
from harness.identity import sha256_of
from harness.plugins import (
    BENCHMARKS,
    TEXT_TOKENIZERS,
    VISUAL_TOKENIZERS,
    BadClip,
    Benchmark,
    ClipItem,
    TextTokenizerPlugin,
    VisualTokenizerPlugin,
)

# The code that turns files into clips: shards are keyed by the data fingerprint alone (the code
# versions of run ids, harness.codehash, do not key the shard cache), so it carries this code.
_DECODER_CODE = hashlib.sha256(
    b"".join((Path(__file__).parent / name).read_bytes() for name in ("decode.py", "manifest.py"))
).hexdigest()[:16]


class VideoFolderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str = Field(description="the folder of videos / images (nothing is downloaded)")
    manifest: str = Field(
        "captions.csv", description="CSV or JSONL with path, caption[, split]; relative to root"
    )
    frames: int = Field(8, ge=1, description="frames per clip")
    frame_stride: int = Field(
        1, ge=1, description="take every n-th source frame (exclusive with fps)"
    )
    fps: float | None = Field(
        None, gt=0, description="resample to this frame rate (source frames nearest i / fps s)"
    )
    height: int = Field(64, ge=1, description="clip height in pixels")
    width: int = Field(64, ge=1, description="clip width in pixels")
    fit: Literal["crop", "resize"] = Field(
        "crop", description="crop: cover then centre-crop; resize: stretch"
    )
    images: Literal["repeat", "skip"] = Field(
        "repeat", description="a still image: repeated to `frames`, or skipped"
    )
    eval_prompts: str | None = Field(
        None, description="text file, one t2v prompt per line (relative to root)"
    )
    eval_size: int = Field(
        8, ge=1, description="clips held out for evaluation when the manifest has no split"
    )
    shard_size: int = Field(256, ge=1, description="clips per token shard")

    def folder(self) -> Path:
        return Path(self.root).expanduser().resolve()

    def resolve(self, name: str) -> Path:
        return self.folder() / Path(name).expanduser()

    @field_validator("root")
    @classmethod
    def _folder(cls, root: str) -> str:
        path = Path(root).expanduser().resolve()  # relative: the spec folder's (harness.specfile)
        if not path.is_dir():
            what = "a file, not a folder" if path.exists() else "no such folder"
            raise ValueError(f"a folder of videos and images ({what}: {path})")
        return root

    @field_validator("manifest", "eval_prompts")
    @classmethod
    def _in_folder(cls, name: str | None, info: ValidationInfo) -> str | None:
        root = info.data.get("root")
        if name is None or root is None:  # root already failed
            return name
        path = Path(root).expanduser().resolve() / Path(name).expanduser()
        if not path.is_file():
            raise ValueError(
                f"a file in the folder (relative to root) or an absolute path (no file {path})"
            )
        return name

    @model_validator(mode="after")
    def _usable(self) -> VideoFolderOptions:
        if self.fps is not None and self.frame_stride != 1:
            raise ValueError(
                f"either fps or frame_stride, not both (got fps={self.fps}, "
                f"frame_stride={self.frame_stride})"
            )
        try:
            split = folder_split(self)
        except ManifestError as exc:
            raise ValueError(f"a readable manifest: {exc}") from None
        if not split.train:
            reasons = "; ".join(f"{r['key']}: {r['reason']}" for r in split.skipped[:3])
            raise ValueError(
                f"at least one usable training clip in {self.resolve(self.manifest)}, got none "
                f"({len(split.skipped)} rows or files skipped{': ' + reasons if reasons else ''}"
                f"{' ...' if len(split.skipped) > 3 else ''})"
            )
        return self


@dataclass(frozen=True)
class FolderSplit:
    train: tuple[Entry, ...]
    eval: tuple[Entry, ...]
    skipped: tuple[dict[str, str], ...]
    manifest_sha: str


def folder_split(options: VideoFolderOptions) -> FolderSplit:
    """Train / eval entries and skip records of a folder (cached per manifest state)."""
    manifest = options.resolve(options.manifest)
    st = manifest.stat()
    return _split(
        str(options.folder()), str(manifest), st.st_size, st.st_mtime_ns, options.eval_size
    )


@functools.lru_cache(maxsize=16)
def _split(root: str, manifest: str, size: int, mtime_ns: int, eval_size: int) -> FolderSplit:
    entries, skipped = read_manifest(Path(root), Path(manifest))
    if any(e.split for e in entries):
        train = tuple(e for e in entries if e.split != "eval")
        held = tuple(e for e in entries if e.split == "eval")
    else:  # no split column: hold out the last eval_size rows, if that leaves any to train on
        k = eval_size if len(entries) > eval_size else 0
        train, held = tuple(entries[: len(entries) - k]), tuple(entries[len(entries) - k :])
    sha = hashlib.sha256(Path(manifest).read_bytes()).hexdigest()[:16]
    return FolderSplit(train, held, tuple(skipped), sha)


@BENCHMARKS.register("video_folder")
class VideoFolderBenchmark(Benchmark):
    """Your own captioned videos / images in a folder, pre-tokenised into shards and streamed."""

    Options = VideoFolderOptions
    tasks = ("t2v", *REAL_TASKS)
    references = ("real", "reconstruction")
    default_tokenizer = "rgb_grid"
    default_text_tokenizer = "bytes"
    streams = True

    def __init__(self, options: VideoFolderOptions, cache_dir: Path) -> None:
        super().__init__(options, cache_dir)
        self.split = folder_split(options)
        self.spec = ClipSpec(
            options.frames,
            options.height,
            options.width,
            options.frame_stride,
            options.fps,
            options.fit,
            options.images,
        )
        self._paths = {e.key: e.path for e in (*self.split.train, *self.split.eval)}

    @functools.cached_property
    def _fingerprint(self) -> str:
        prompts = self.options.eval_prompts
        return sha256_of(
            {
                "code": _DECODER_CODE,  # a fix to decoding or the manifest rules re-tokenises
                "options": self.options.model_dump(mode="json", exclude={"root"}),
                "manifest": self.split.manifest_sha,
                "files": [
                    [e.key, *file_signature(e.path)] for e in (*self.split.train, *self.split.eval)
                ],
                "eval_prompts": self.options.resolve(prompts).read_text() if prompts else None,
            }
        )[:16]

    def fingerprint(self) -> str:
        """Manifest content, every used file's size + mtime + 8 KiB hash, the options (not the folder's
        path) and the decoding code."""
        return self._fingerprint

    @classmethod
    def describe_data(cls, options: VideoFolderOptions) -> str:
        """Usable train / eval items and the skipped rows or files with the first reasons (the
        manifest and folder listing only: decoding problems show when `tokenize` reads clips)."""
        split = folder_split(options)
        reasons = "; ".join(f"{r['key']}: {r['reason']}" for r in split.skipped[:3])
        more = " ..." if len(split.skipped) > 3 else ""
        why = f" ({reasons}{more})" if split.skipped else ""
        return (
            f"{options.folder()}: {len(split.train)} training and {len(split.eval)} evaluation "
            f"items usable, {len(split.skipped)} skipped{why}"
        )

    @classmethod
    def geometry_of(cls, options: VideoFolderOptions) -> tuple[int, int, int]:
        return options.frames, options.height, options.width

    @classmethod
    def fps_of(cls, options: VideoFolderOptions) -> float | None:
        """`fps` when the clips are resampled to it; None with frame_stride (the rate depends on
        each source file's)."""
        return options.fps

    def geometry(self) -> tuple[int, int, int]:
        return self.geometry_of(self.options)

    # -- training data: streamed (harness.token_shards), or all in memory for small folders
    def training_clips(self) -> tuple[list[ClipItem], list[dict[str, str]]]:
        return [ClipItem(e.key, e.caption) for e in self.split.train], list(self.split.skipped)

    def load_clip(self, item: ClipItem) -> torch.Tensor:
        """uint8 (F, H, W, 3) of `item`, or BadClip(reason)."""
        return torch.from_numpy(read_clip(self._paths[item.key], self.spec))

    def training_set(self) -> tuple[list[str], torch.Tensor]:
        """(captions, uint8 (N, F, H, W, 3)) of every decodable training clip (memory grows with N)."""
        items, _ = self.training_clips()
        captions, clips = [], []
        for item in items:
            try:
                clips.append(self.load_clip(item))
                captions.append(item.caption)
            except BadClip:
                continue
        return captions, torch.stack(clips)

    # -- evaluation
    @functools.cached_property
    def _eval_decoded(self) -> tuple[dict[str, torch.Tensor], list[dict[str, str]]]:
        """({key: uint8 (F, H, W, 3)} of the decodable eval clips, {"key", "reason"} of the others)."""
        out, skipped = {}, []
        for e in self.split.eval:
            try:
                out[e.key] = self.load_clip(ClipItem(e.key, e.caption))
            except BadClip as exc:
                skipped.append({"key": e.key, "reason": str(exc)})
        return out, skipped

    @property
    def _eval_clips(self) -> dict[str, torch.Tensor]:
        return self._eval_decoded[0]

    def eval_skipped(self) -> list[dict[str, str]]:
        """The eval clips that could not be decoded (left out of every suite), with the reason."""
        return self._eval_decoded[1]

    def suite(self, task: str) -> list[VideoPrompt]:
        if task == "t2v" and self.options.eval_prompts:
            return [
                VideoPrompt(c, "t2v")
                for c in read_prompts(self.options.resolve(self.options.eval_prompts))
            ]
        cond = condition_frames(task, self.options.frames)
        prompts = [
            VideoPrompt(e.caption, task, cond, e.key)
            for e in self.split.eval
            if e.key in self._eval_clips
        ]
        if not prompts:
            raise ValueError(
                f"benchmark video_folder: the {task} suite needs eval clips (manifest rows with split "
                f"'eval', or eval_size rows held out when there is no split), and "
                f"{self.options.resolve(self.options.manifest)} has no decodable one"
            )
        return prompts

    def real_videos(self, prompts: list[VideoPrompt]) -> torch.Tensor:
        """uint8 (N, F, H, W, 3) (F = 1 for t2i prompts)."""
        missing = [p.caption for p in prompts if p.key is None]
        if missing:
            raise ValueError(
                f"benchmark video_folder: prompt {missing[0][:60]!r} comes from eval_prompts and has "
                f"no real clip (tasks other than t2v, denoising_bins and reference rows need eval clips)"
            )
        clips = torch.stack([self._eval_clips[p.key] for p in prompts])
        return clips[:, :1] if prompts and prompts[0].task == "t2i" else clips

    def generate_reference(
        self, name: str, prompts: list[VideoPrompt], tokenizer: Any, seed: int
    ) -> torch.Tensor:
        real = self.real_videos(prompts)
        return real if name == "real" else tokenizer.decode(tokenizer.encode(real))


class RGBGridOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patch: int = Field(
        4, ge=1, description="pixels per patch side (clip height and width must divide by it)"
    )
    levels: int = Field(
        4, ge=2, le=16, description="quantisation levels per RGB channel: K = levels ** 3"
    )


@VISUAL_TOKENIZERS.register("rgb_grid")
class RGBGrid(VisualTokenizerPlugin):
    """Patch mean colour on a uniform RGB grid (K = levels^3); no weights, any video."""

    Options = RGBGridOptions

    @classmethod
    def vocab_size(cls, options: RGBGridOptions) -> int:
        return options.levels**3

    @classmethod
    def build(cls, options: RGBGridOptions, benchmark: Benchmark, cache_dir: Path) -> Any:
        from benchmarks.video_folder.tokenizers import RGBGridTokenizer

        return RGBGridTokenizer(options.patch, options.levels)


class BytesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_length: int = Field(64, ge=1, description="caption bytes kept")


@TEXT_TOKENIZERS.register("bytes")
class Bytes(TextTokenizerPlugin):
    """UTF-8 bytes of the caption (vocab 257); no files, any language."""

    Options = BytesOptions

    @classmethod
    def build(cls, options: BytesOptions, benchmark: Benchmark, cache_dir: Path) -> Any:
        from benchmarks.video_folder.tokenizers import ByteTokenizer

        return ByteTokenizer(options.max_length)


from benchmarks.video_folder import token_folder  # noqa: E402,F401 - registers token_folder (stored ids) beside it
