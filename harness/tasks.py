"""Generation tasks: how one batch of prompts becomes visual ids, registered by name (`sample.tasks`).

Each task is `fn(ctx, prompts) -> ids long (B, T', h, w)`; conditioned tasks take their given
frames from the benchmark's real clips, each condition encoded on its own (never cut from the
whole clip's ids), as the paper's I2V / interpolation / extrapolation settings do. A benchmark
says which tasks it has suites for (`Benchmark.tasks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from harness.data import Data
from harness.plugins import TASKS, Prompt
from harness.spec import SampleConfig


@dataclass
class TaskContext:
    """What a task needs besides its prompts: the sampler, the data components, the settings."""

    sampler: Any  # ursa.sample.EulerSampler
    data: Data
    config: SampleConfig
    generator: torch.Generator

    def text(self, prompts: list[Prompt]) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """(text_ids (B, L), text_mask (B, L), sampler keywords: generator and, with CFG, the unconditional
        text: the text tokenizer's `uncond(B)` -> (ids (B, L'), mask (B, L')) when it has one (e.g. a
        negative prompt), else the empty prompt (text fully masked out)."""
        text_ids, text_mask = self.data.text([p.caption for p in prompts])
        kw: dict[str, Any] = {"generator": self.generator}
        if self.config.guided:
            uncond = getattr(self.data.text, "uncond", None)
            if callable(uncond):
                kw["uncond_ids"], kw["uncond_mask"] = uncond(len(prompts))
            else:
                kw.update(
                    uncond_ids=torch.zeros_like(text_ids[:, :1]),
                    uncond_mask=torch.zeros_like(text_mask[:, :1]),
                )
        return text_ids, text_mask, kw

    def clip_length(self, prompts: list[Prompt]) -> int:
        """T': the latent frames of the prompts' real clips (what a conditioned task samples)."""
        clip = self.data.benchmark.real_videos(prompts[:1])
        return self.data.tokenizer.latent_shape(*clip.shape[1:4])[0]

    def given(self, prompts: list[Prompt], frames: tuple[int, ...]) -> torch.Tensor:
        """long (B, k, h, w): pixel frames `frames` of the prompts' real clips encoded on their own
        (`Benchmark.condition_ids`), never taken from the whole clip's ids: an encoder that mixes
        frames (the Cosmos-3D VAE's temporal attention) would let a condition see the frames the
        task generates. The authors encode an image condition as a one-frame video and a video
        condition as its own clip (URSAPipeline.encode_image / encode_video)."""
        return self.data.benchmark.condition_ids(prompts, self.data.tokenizer, frames)


def long_windows(length: int, window: int, context_frames: int) -> int:
    """Fewest windows n with window + (n - 1) * (window - context_frames) >= length (latent frames)."""
    if not 1 <= context_frames < window:
        raise ValueError(
            f"sample.context_frames: expected an integer in [1, {window}) (the window's latent "
            f"frames), got {context_frames}"
        )
    return 1 + max(0, -(-(length - window) // (window - context_frames)))


@TASKS.register("t2v")
def text_to_video(ctx: TaskContext, prompts: list[Prompt]) -> torch.Tensor:
    from ursa import sample as S

    text_ids, text_mask, kw = ctx.text(prompts)
    return S.text_to_video(ctx.sampler, text_ids, text_mask, ctx.data.latent_shape(), **kw)


@TASKS.register("t2i")
def text_to_image(ctx: TaskContext, prompts: list[Prompt]) -> torch.Tensor:
    from ursa import sample as S

    text_ids, text_mask, kw = ctx.text(prompts)
    return S.text_to_image(ctx.sampler, text_ids, text_mask, ctx.data.latent_shape()[1:], **kw)


@TASKS.register("long")
def long_video(ctx: TaskContext, prompts: list[Prompt]) -> torch.Tensor:
    """As many sliding windows as cover the suite's clip, cut to its length."""
    from ursa import sample as S

    text_ids, text_mask, kw = ctx.text(prompts)
    T, h, w = ctx.data.latent_shape()
    length = ctx.data.tokenizer.latent_shape(
        *ctx.data.benchmark.real_videos(prompts[:1]).shape[1:4]
    )[0]
    c = ctx.config.context_frames
    ids = S.long_video(
        ctx.sampler,
        text_ids,
        text_mask,
        (T, h, w),
        num_windows=long_windows(length, T, c),
        context_frames=c,
        **kw,
    )
    return ids[:, :length]


@TASKS.register("i2v")
def image_to_video(ctx: TaskContext, prompts: list[Prompt]) -> torch.Tensor:
    """The first pixel frame, encoded as a one-frame video, given as latent frame 0."""
    from ursa import sample as S

    text_ids, text_mask, kw = ctx.text(prompts)
    first = ctx.given(prompts, (0,))[:, 0]
    return S.image_to_video(ctx.sampler, text_ids, text_mask, first, ctx.clip_length(prompts), **kw)


@TASKS.register("interpolation")
def interpolation(ctx: TaskContext, prompts: list[Prompt]) -> torch.Tensor:
    """The first and the last pixel frame, each encoded as a one-frame video, given as the first
    and the last latent frame."""
    from ursa import sample as S

    text_ids, text_mask, kw = ctx.text(prompts)
    frames = ctx.data.benchmark.real_videos(prompts[:1]).shape[1]
    first, last = ctx.given(prompts, (0,))[:, 0], ctx.given(prompts, (frames - 1,))[:, 0]
    length = ctx.clip_length(prompts)
    return S.interpolate(ctx.sampler, text_ids, text_mask, first, last, length, **kw)


@TASKS.register("extrapolation")
def extrapolation(ctx: TaskContext, prompts: list[Prompt]) -> torch.Tensor:
    """The prompts' context frames (`condition_frames`) encoded as their own clip, given as the
    first latent frames (the authors' video-to-video: the context only; `sample.cond_noise_scale`
    noises it as their `cond_noise_scale`)."""
    from ursa import sample as S

    text_ids, text_mask, kw = ctx.text(prompts)
    context = ctx.given(prompts, tuple(prompts[0].condition_frames))
    return S.extrapolate(ctx.sampler, text_ids, text_mask, context, ctx.clip_length(prompts), **kw)
