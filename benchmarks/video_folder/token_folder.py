"""The `token_folder` benchmark: clips tokenised elsewhere (a `precomputed` folder) as training data and suites.

The folder (layout: ursa/tokenizers/precomputed.py) holds shards of visual ids, their captions, the
(K, D) codebook and optionally the TorchScript decoder / encoder. Training clips are the stored ids:
harness.token_shards reads them (`pretokenized = True`: no decoding or encoding), adds the text columns
once into the shard cache (keyed by the folder's and the text tokenizer's fingerprints) and training
streams them (ursa.shards). Caption rows split `eval` (else the last `eval_size` clips) are the
evaluation suites; their real clips are the stored ids decoded by the folder's decoder. Its tokenizer
is the folder's own (`precomputed`, path left out): the ids index that codebook and no other.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from benchmarks.video_folder.manifest import file_signature
from benchmarks.video_folder.prompts import REAL_TASKS, VideoPrompt, condition_frames, read_prompts
from harness.identity import sha256_of
from harness.plugins import BENCHMARKS, Benchmark, ClipItem


class TokenFolderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="precomputed-tokens folder (precomputed.json, codebook, shards/, decoder.jit)"
    )
    eval_size: int = Field(
        8, ge=1, description="last clips held out for evaluation when no caption row has a split"
    )
    eval_prompts: str | None = Field(
        None, description="text file, one t2v prompt per line (relative to path)"
    )
    shard_size: int = Field(256, ge=1, description="clips per shard of the training cache")
    device: str = Field(
        "cpu", description="torch device the folder's decoder runs on for the real clips"
    )
    batch_size: int = Field(1, ge=1, description="clips per decoder call (bounds memory)")

    def folder(self) -> Path:
        return Path(self.path).expanduser().resolve()

    @field_validator("path")
    @classmethod
    def _readable(cls, path: str) -> str:
        from ursa.tokenizers.precomputed import CODEBOOK_NPY, CODEBOOK_ST, META, SHARDS, load_meta

        folder = Path(path).expanduser()
        missing = [str(folder / META)] if not (folder / META).is_file() else []
        if not (folder / CODEBOOK_ST).is_file() and not (folder / CODEBOOK_NPY).is_file():
            missing.append(f"{folder / CODEBOOK_ST} (or {CODEBOOK_NPY})")
        if not list((folder / SHARDS).glob("shard-*.npy")):
            missing.append(f"{folder / SHARDS}/shard-*.npy")
        if missing:
            raise ValueError(
                f"a precomputed-tokens folder (layout: ursa/tokenizers/precomputed.py); missing "
                f"{', '.join(missing)}"
            )
        if load_meta(folder / META)[2] is None:
            raise ValueError(
                f"{folder / META}: latent_shape: expected [T, h, w] of the shards' clips, got none"
            )
        return path

    @field_validator("eval_prompts")
    @classmethod
    def _in_folder(cls, name: str | None, info: ValidationInfo) -> str | None:
        root = info.data.get("path")
        if name is not None and root is not None and not (Path(root).expanduser() / name).is_file():
            raise ValueError(
                f"a file in the folder (relative to path), got no file {Path(root).expanduser() / name}"
            )
        return name

    @model_validator(mode="after")
    def _usable(self) -> TokenFolderOptions:
        split = folder_split(self)
        if not split.train:
            raise ValueError(
                f"at least one training clip in {self.folder()}, got none ({len(split.eval)} clips, "
                f"all held out for evaluation: lower eval_size or split rows 'train')"
            )
        return self


@dataclass(frozen=True)
class TokenClip:
    """One stored clip: its key, caption and where its ids are (shard file, row)."""

    key: str
    caption: str
    shard: Path
    row: int


@dataclass(frozen=True)
class TokenSplit:
    train: tuple[TokenClip, ...]
    eval: tuple[TokenClip, ...]
    signature: tuple  # the files' size + mtime + probe hashes: the data part of the fingerprint


def folder_split(options: TokenFolderOptions) -> TokenSplit:
    """Train / eval clips of a token folder (cached per state of its shard and caption files)."""
    from ursa.tokenizers.precomputed import CAPTIONS, SHARDS

    folder = options.folder()
    files = sorted((folder / SHARDS).glob("shard-*.npy")) + [folder / SHARDS / CAPTIONS]
    signature = tuple(
        (p.name, *file_signature(p)) if p.is_file() else (p.name, None) for p in files
    )
    return _split(str(folder), signature, options.eval_size)


@functools.lru_cache(maxsize=16)
def _split(folder: str, signature: tuple, eval_size: int) -> TokenSplit:
    from ursa.tokenizers.precomputed import (
        CAPTIONS,
        META,
        SHARDS,
        load_meta,
        read_caption_rows,
        shard_counts,
        shard_files,
    )

    files = shard_files(Path(folder))
    counts = shard_counts(files, load_meta(Path(folder) / META)[2])
    if not files:
        raise ValueError(f"{Path(folder) / SHARDS}: expected shard-*.npy files of ids, got none")
    rows = read_caption_rows(Path(folder) / SHARDS / CAPTIONS, sum(counts))
    where = [(f, r) for f, n in zip(files, counts) for r in range(n)]
    clips = [
        TokenClip(row.get("key") or f"{f.name}:{r}", row["caption"], f, r)
        for row, (f, r) in zip(rows, where)
    ]
    keys = [c.key for c in clips]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(
            f"{Path(folder) / SHARDS / CAPTIONS}: expected a unique 'key' per clip, got {dup!r} twice"
        )
    if any("split" in row for row in rows):
        held = [row.get("split") == "eval" for row in rows]
    else:  # no split: hold out the last eval_size clips, if that leaves any to train on
        k = eval_size if len(clips) > eval_size else 0
        held = [i >= len(clips) - k for i in range(len(clips))]
    return TokenSplit(
        tuple(c for c, h in zip(clips, held) if not h),
        tuple(c for c, h in zip(clips, held) if h),
        signature,
    )


def read_ids(clips: list[TokenClip], latent: tuple[int, int, int]) -> torch.Tensor:
    """long (n, T, h, w): the stored ids of `clips`, one memory map per shard touched."""
    out = torch.empty((len(clips), *latent), dtype=torch.long)
    by_shard: dict[Path, list[int]] = {}
    for i, c in enumerate(clips):
        by_shard.setdefault(c.shard, []).append(i)
    for shard, idx in by_shard.items():
        rows = np.load(shard, mmap_mode="r")[
            [clips[i].row for i in idx]
        ]  # fancy index: copies just these rows
        out[idx] = torch.from_numpy(rows.astype(np.int64)).reshape(len(idx), *latent)
    return out


@BENCHMARKS.register("token_folder")
class TokenFolderBenchmark(Benchmark):
    """Clips tokenised elsewhere (a precomputed folder): stored ids streamed into training, decoded for scoring."""

    Options = TokenFolderOptions
    tasks = ("t2v", *REAL_TASKS)
    references = (
        "real",
    )  # the stored ids decoded: the tokenizer's ceiling (no pixels beyond them exist here)
    default_tokenizer = "precomputed"
    default_text_tokenizer = "bytes"
    streams = True
    pretokenized = True  # training_clips are ids (load_tokens), not pixels: harness.token_shards reads, never encodes

    def __init__(self, options: TokenFolderOptions, cache_dir: Path) -> None:
        super().__init__(options, cache_dir)
        self.split = folder_split(options)
        self.token_root = (
            options.folder()
        )  # the `precomputed` tokenizer's folder when its path is left out

    @functools.cached_property
    def _tokenizer(self) -> Any:
        """The folder's own PrecomputedTokenizer (codebook, geometry, decoder for the real clips)."""
        from ursa.tokenizers.precomputed import PrecomputedTokenizer

        return PrecomputedTokenizer(
            self.token_root, device=self.options.device, batch_size=self.options.batch_size
        )

    @classmethod
    def check_run(cls, options: TokenFolderOptions, config: Any) -> str | None:
        """The folder's own tokenizer and a decoder (every run decodes its samples for scoring). No
        encoder is needed: conditioned tasks and score.denoising_bins read the stored ids (`real_ids`)."""
        from ursa.tokenizers.precomputed import DECODER

        folder = options.folder()
        tok = config.tokenizer.options()
        if config.tokenizer.name != "precomputed" or (
            tok.get("path") is not None and Path(tok["path"]).expanduser().resolve() != folder
        ):
            return (
                f"tokenizer {{name: precomputed}} (path left out, or {folder}): the ids of benchmark "
                f"token_folder index that folder's codebook, got tokenizer {config.tokenizer.name!r} "
                f"{'at ' + str(tok.get('path')) if tok.get('path') else ''}".rstrip()
            )
        if not (folder / DECODER).is_file():
            return (
                f"{folder / DECODER}: every run decodes its samples (sample.tasks: "
                f"{', '.join(config.sample.tasks)}) to pixels for score.which, and the reference row decodes the "
                f"stored ids; got no decoder (export the tokenizer's decoder as TorchScript: ids long (B, T, h, w) "
                f"-> video float (B, 3, F, H, W) in [-1, 1])"
            )
        return None

    @functools.cached_property
    def _fingerprint(self) -> str:
        prompts = self.options.eval_prompts
        return sha256_of(
            {
                "options": self.options.model_dump(
                    mode="json", exclude={"path", "device", "batch_size"}
                ),
                "files": self.split.signature,  # shard and caption files: size, mtime, probe hash
                "meta": (
                    self.options.folder() / "precomputed.json"
                ).read_text(),  # geometry (the tokenizer's
                # fingerprint, in the data fingerprint beside this one, covers codebook, decoder and encoder)
                "eval_prompts": (self.options.folder() / prompts).read_text() if prompts else None,
            }
        )[:16]

    def fingerprint(self) -> str:
        """The shard and caption files (size + mtime + probe hash), codebook and TorchScript files, options."""
        return self._fingerprint

    def geometry(self) -> tuple[int, int, int]:
        return self._tokenizer.pixel_geometry()

    # -- training data: the stored ids, read into the shard cache by harness.token_shards
    def training_clips(self) -> tuple[list[ClipItem], list[dict[str, str]]]:
        return [ClipItem(c.key, c.caption) for c in self.split.train], []

    @functools.cached_property
    def _train_by_key(self) -> dict[str, TokenClip]:
        return {c.key: c for c in self.split.train}

    def load_tokens(self, items: list[ClipItem]) -> torch.Tensor:
        """long (n, T, h, w): the stored ids of training `items` (range-checked by the caller)."""
        return read_ids([self._train_by_key[item.key] for item in items], self._tokenizer.latent)

    def training_set(self) -> tuple[list[str], torch.Tensor]:
        raise NotImplementedError(
            "token_folder streams its stored ids (harness.token_shards); it has no pixel training set"
        )

    # -- evaluation
    @functools.cached_property
    def _eval_ids(self) -> dict[str, torch.Tensor]:
        """{key: long (T, h, w)} of the held-out clips."""
        ids = read_ids(list(self.split.eval), self._tokenizer.latent)
        return {c.key: ids[i] for i, c in enumerate(self.split.eval)}

    def suite(self, task: str) -> list[VideoPrompt]:
        if task == "t2v" and self.options.eval_prompts:
            return [
                VideoPrompt(c, "t2v")
                for c in read_prompts(self.options.folder() / self.options.eval_prompts)
            ]
        cond = condition_frames(task, self.geometry()[0])
        prompts = [VideoPrompt(c.caption, task, cond, c.key) for c in self.split.eval]
        if not prompts:
            raise ValueError(
                f"benchmark token_folder: the {task} suite needs held-out clips (caption rows with "
                f"split 'eval', or eval_size clips when no row has a split), and "
                f"{self.options.folder()} has none"
            )
        return prompts

    def real_ids(self, prompts: list[VideoPrompt], tokenizer: Any = None) -> torch.Tensor:
        """long (N, T, h, w): the stored ids of `prompts`' held-out clips (as stored: never re-encoded)."""
        missing = [p.caption for p in prompts if p.key is None]
        if missing:
            raise ValueError(
                f"benchmark token_folder: prompt {missing[0][:60]!r} comes from eval_prompts and has "
                f"no stored clip (tasks other than t2v, denoising_bins and reference rows need them)"
            )
        return torch.stack([self._eval_ids[p.key] for p in prompts])

    def condition_ids(
        self, prompts: list[VideoPrompt], tokenizer: Any, frames: Any
    ) -> torch.Tensor:
        """long (N, k, h, w): the stored latent frames holding pixel frames `frames` (a run starting
        at the first frame or ending at the last). The ids were encoded elsewhere from whole clips
        and there are no pixels to encode the condition alone (the encoder is optional here): with
        a tokenizer whose encoder mixes frames the condition has seen the frames a task generates;
        store per-condition ids, or use video_folder with the tokenizer, to avoid that."""
        frames = list(frames)
        count = self.geometry()[0]
        run = frames == list(range(frames[0], frames[0] + len(frames)))
        if not run or frames[0] != 0 and frames[-1] != count - 1:
            raise ValueError(
                f"benchmark token_folder: condition frames {frames} are not a "
                f"run at the start or the end of a {count}-frame clip, so no "
                f"stored latent frames hold them alone"
            )
        k = self._tokenizer.latent_shape(len(frames), *self.geometry()[1:])[0]
        ids = self.real_ids(prompts)
        return ids[:, :k] if frames[0] == 0 else ids[:, ids.shape[1] - k :]

    def real_videos(self, prompts: list[VideoPrompt]) -> torch.Tensor:
        """uint8 (N, F, H, W, 3): the stored ids decoded by the folder's decoder (F = 1 for t2i prompts)."""
        clips = self._tokenizer.decode(self.real_ids(prompts))
        return clips[:, :1] if prompts and prompts[0].task == "t2i" else clips

    def generate_reference(
        self, name: str, prompts: list[VideoPrompt], tokenizer: Any, seed: int
    ) -> torch.Tensor:
        return self.real_videos(prompts)
