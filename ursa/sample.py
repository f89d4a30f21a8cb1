"""Euler sampling of the URSA continuous-time Markov chain, and the generation tasks built on it.

N steps on the grid t_k = shift_time(k / N), h_k = t_{k+1} - t_k (docs/math.md, "Velocity and
the Euler sampler"). Each step: logits z = model(x_t) (classifier-free guidance on logits while
t < cfg_trunc), one draw x1_hat ~ Categorical(softmax(z)) per token, then path.step jumps each
token with probability 1 - exp(-h r) towards x1_hat. The last step returns x1_hat itself (or
argmax z). Tokens of condition frames are reset to the given ids before every model call and
after every jump, i.e. held clean (t = 1) throughout (`compat_condition_drift` reproduces the
authors' pipeline instead: written once at the start, then free to jump).

t = 0: with alpha < 1 the metric path's beta_dot is infinite at t = 0. The grid starts at exactly
t_0 = 0 because MetricPath.step replaces h * beta_dot_0 by its finite integral beta_h - beta_0,
so the first step from pure noise already moves tokens (the authors' first step moves nothing;
`compat_still_first_step` reproduces that).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn
from tqdm.auto import tqdm

from ursa.paths import ProbPath
from ursa.schedule import ShiftRule, resolve_shift, shift_time
from ursa.tensor_checks import check_tensor, describe


class SamplerConfig(BaseModel):
    """steps N >= 1; shift lambda > 0 (resolved by `shift_rule`, as in training); CFG scale s
    applied while t < cfg_trunc. The harness's `sample:` section extends this model."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    steps: int = Field(25, ge=1)  # Euler steps N
    shift: float = Field(1.0, gt=0)  # timestep shift lambda of the sampling grid
    shift_rule: ShiftRule = (
        "fixed"  # "resolution": lambda from the clip's token count, as in training
    )
    cfg_scale: float = Field(1.0, ge=0)  # classifier-free guidance scale s (<= 1: no guidance)
    cfg_trunc: float = Field(0.9, ge=0, le=1)  # guidance only while t < cfg_trunc
    # s < 1 moves the prediction towards the unconditional one; the authors guide only when s > 1
    # (URSAPipeline.__call__: `if guidance_scale > 1`), so a scale below 1 needs this set
    cfg_below_one: bool = False
    # the authors' cond_noise_scale: the given frames are noised once to t = 1 - s along the path
    # (KineticOptimalScheduler.add_noise) before sampling, then held as noised; 0 gives them clean
    cond_noise_scale: float = Field(0.0, ge=0, lt=1)
    # the transformer's dtype while sampling (`for_precision`); guidance, softmax and the path step
    # run in float32, except "release": all in float16 as the authors' pipeline (their bug 4)
    precision: Literal["float32", "bfloat16", "release"] = "float32"
    argmax_last: bool = (
        False  # the last step takes the argmax of the prediction instead of a sample
    )
    # the authors' bug 2 (docs/release.md), for like-for-like comparison with their published numbers: condition
    # frames are set once at the start, then jump like any token (their I2V / V2V frames drift); False holds them
    compat_condition_drift: bool = False
    # the authors' bug 6: the metric path's beta_dot is taken as 0 at t = 0, so the first step moves no token
    # (their model call there is wasted); False integrates beta over the first step (ursa/sample.py docstring)
    compat_still_first_step: bool = False

    @model_validator(mode="after")
    def _guidance_below_one(self) -> SamplerConfig:
        if self.cfg_scale < 1 and not self.cfg_below_one:
            raise ValueError(
                f"cfg_scale {self.cfg_scale:g} < 1 guides towards the unconditional "
                f"prediction, which the authors' pipeline never does (it guides only "
                f"when the scale is > 1 and samples unguided otherwise): set "
                f"cfg_scale 1 for no guidance, or cfg_below_one true to mean it"
            )
        return self

    @property
    def guided(self) -> bool:
        """Whether the sampler runs the unconditional branch: s > 1 (the authors' switch), or s < 1
        when `cfg_below_one` says so."""
        return self.cfg_scale > 1 or (self.cfg_below_one and self.cfg_scale < 1)

    def shift_for(self, num_tokens: int) -> float:
        """The shift lambda used for clips of `num_tokens` visual tokens."""
        return resolve_shift(self.shift, self.shift_rule, num_tokens)

    def time_grid(self, num_tokens: int = 1) -> Tensor:
        """float64 (steps + 1,) times t_k = shift_time(k / N): 0 = t_0 < ... < t_N = 1
        (`num_tokens` matters only under the "resolution" shift rule)."""
        return shift_time(
            torch.arange(self.steps + 1, dtype=torch.float64) / self.steps,
            self.shift_for(num_tokens),
        )


def _pad_to(ids: Tensor, mask: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """Right-pad text (B, L) to `length` with id 0 and mask False (padding is never attended)."""
    pad = length - ids.shape[1]
    return torch.nn.functional.pad(ids, (0, pad)), torch.nn.functional.pad(
        mask, (0, pad), value=False
    )


def guided_inputs(
    text_ids: Tensor, text_mask: Tensor, uncond_ids: Tensor, uncond_mask: Tensor
) -> tuple[Tensor, Tensor | None]:
    """The text of the batched guided forward: ids long (2B, L') = [cond; uncond], both right-padded
    to the longer length L', and their mask bool (2B, L') (None when every token is real)."""
    length = max(text_ids.shape[1], uncond_ids.shape[1])
    (text, mask), (u_ids, u_mask) = (
        _pad_to(text_ids, text_mask, length),
        _pad_to(uncond_ids, uncond_mask, length),
    )
    return torch.cat([text, u_ids]), _mask_or_none(torch.cat([mask, u_mask]))


def _mask_or_none(mask: Tensor) -> Tensor | None:
    """None when every token is real (the model then uses its unmasked attention kernel), else `mask`.
    One host sync on an accelerator: called once per sampling call, not at every step."""
    return None if bool(mask.all()) else mask


def categorical(
    logits: Tensor,
    generator: torch.Generator | None = None,
    chunk_size: int = 4096,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """One draw per row of softmax(logits (..., K)) -> long (...), by inverse CDF; softmax and
    CDF in `dtype` (float16: the authors' release sampling).

    Rows are processed chunk_size at a time (memory chunk x K). Inverse CDF with
    searchsorted(right=True) never returns a zero-probability id and is ~8x faster than
    torch.multinomial on CPU at K = 64000.
    """
    flat = logits.reshape(-1, logits.shape[-1])
    u = torch.rand(flat.shape[0], 1, generator=generator, device=flat.device)
    out = []
    for rows, u_rows in zip(flat.split(chunk_size), u.split(chunk_size)):
        cdf = torch.softmax(rows.to(dtype), dim=-1).cumsum_(-1)
        out.append(
            torch.searchsorted(cdf, u_rows * cdf[:, -1:], right=True).clamp_max_(flat.shape[-1] - 1)
        )
    return torch.cat(out).view(logits.shape[:-1])


CFG_ROWS = 4096  # token rows guided at once (memory CFG_ROWS x K float32)
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "release": torch.float16}


def for_precision(model: nn.Module, path: ProbPath, precision: str) -> tuple[nn.Module, ProbPath]:
    """(model cast in place to the precision's dtype, the path computing in it when "release": the
    authors run the transformer and their scheduler's codebook in float16)."""
    dtype = PRECISIONS[precision]
    model = model.to(dtype)
    if precision == "release":
        path = path.in_dtype(dtype)
    return model, path


class EulerSampler:
    """Sample visual ids (B, T, h, w) from `model` along `path` with `config`."""

    def __init__(
        self, model: nn.Module, path: ProbPath, config: SamplerConfig | None = None
    ) -> None:
        self.model = model
        self.path = path
        self.config = config or SamplerConfig()

    def _logits(
        self,
        text: Tensor,
        mask: Tensor | None,
        x: Tensor,
        guided: tuple[Tensor, Tensor | None] | None,
    ) -> Tensor:
        """Guided logits float32 (B, T, h, w, K), float16 under precision "release". guided: the
        (cond ; uncond) text ids (2B, L') and mask, so both branches share one batched forward;
        None: the conditional branch alone."""
        dtype = self._dtype
        if guided is None:
            return self.model(text, x, mask).to(dtype)
        z = self.model(guided[0], torch.cat([x, x]), guided[1])
        z_cond, z_uncond = (part.reshape(-1, part.shape[-1]) for part in z.chunk(2))
        # guided in float32 a chunk of rows at a time: no float32 copy of both branches (at 33,280 tokens
        # and K = 64,000 that copy is 17 GB); elementwise the same arithmetic as on whole tensors
        out = torch.empty(z_cond.shape, dtype=dtype, device=z.device)
        for start in range(0, z_cond.shape[0], CFG_ROWS):
            rows = slice(start, start + CFG_ROWS)
            u = z_uncond[rows].to(dtype)
            out[rows] = u + self.config.cfg_scale * (z_cond[rows].to(dtype) - u)
        return out.view(*x.shape, -1)

    @property
    def _dtype(self) -> torch.dtype:
        """The dtype of guidance and softmax: float16 under precision "release", else float32."""
        return torch.float16 if self.config.precision == "release" else torch.float32

    @torch.no_grad()
    def sample(
        self,
        text_ids: Tensor,
        text_mask: Tensor,
        latent_shape: tuple[int, int, int],
        *,
        uncond_ids: Tensor | None = None,
        uncond_mask: Tensor | None = None,
        condition_ids: Tensor | None = None,
        condition_frames: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> Tensor:
        """text_ids long (B, L), text_mask bool (B, L), latent_shape (T, h, w) -> ids long (B, T, h, w).

        uncond_ids long (B or 1, L'), uncond_mask bool (same): the negative / empty prompt, needed
        when the config guides (`SamplerConfig.guided`). condition_ids long (B, T, h, w) with
        condition_frames bool (B, T): frames marked True are given and held fixed.
        """
        cfg = self.config
        check_tensor("text_ids", text_ids, torch.long, ("B", "L"))
        batch, device = text_ids.shape[0], text_ids.device
        check_tensor("text_mask", text_mask, torch.bool, tuple(text_ids.shape))
        if len(latent_shape) != 3 or not all(isinstance(n, int) and n >= 1 for n in latent_shape):
            raise ValueError(
                f"latent_shape: expected three positive ints (T, h, w), got {latent_shape!r}"
            )
        shape = (batch, *latent_shape)
        use_cfg = cfg.guided
        guided = None  # the batched (cond; uncond) text of the guided forward
        if use_cfg:
            if uncond_ids is None or uncond_mask is None:
                raise ValueError(
                    f"uncond_ids: expected negative-prompt ids and mask when "
                    f"cfg_scale={cfg.cfg_scale} guides, got None"
                )
            check_tensor("uncond_ids", uncond_ids, torch.long, ("B", "L"))
            if uncond_ids.shape[0] not in (1, batch):
                raise ValueError(
                    f"uncond_ids: expected batch 1 or {batch}, got shape {tuple(uncond_ids.shape)}"
                )
            check_tensor("uncond_mask", uncond_mask, torch.bool, tuple(uncond_ids.shape))
            guided = guided_inputs(
                text_ids,
                text_mask,
                uncond_ids.expand(batch, -1).to(device),
                uncond_mask.expand(batch, -1).to(device),
            )
        if (condition_ids is None) != (condition_frames is None):
            raise ValueError(
                "condition_frames: expected condition_ids and condition_frames both given or both None, "
                f"got {describe(condition_ids)} and {describe(condition_frames)}"
            )
        held: tuple[Tensor, Tensor] | None = None  # (frames given (B, T, h, w) bool, their ids)
        if condition_ids is not None and condition_frames is not None:  # both or neither (above)
            check_tensor("condition_ids", condition_ids, torch.long, shape)
            check_tensor("condition_frames", condition_frames, torch.bool, shape[:2])
            if int(condition_ids.min()) < 0 or int(condition_ids.max()) >= self.path.vocab_size:
                raise ValueError(
                    f"condition_ids: expected ids in [0, {self.path.vocab_size}), got values in "
                    f"[{int(condition_ids.min())}, {int(condition_ids.max())}]"
                )
            condition_ids = condition_ids.to(device)
            if cfg.cond_noise_scale > 0:  # their add_noise(cond, 1 - s): drawn once, then held
                t = 1.0 - cfg.cond_noise_scale
                condition_ids = self.path.sample(condition_ids, t, generator=generator)
            held = (condition_frames[:, :, None, None].expand(shape).to(device), condition_ids)

        check_ids = getattr(
            self.model, "check_ids", None
        )  # URSAModel checks id ranges once here, not every step
        if check_ids is not None:
            check_ids(text_ids, condition_ids)
            if guided is not None:
                check_ids(guided[0])
        mask = _mask_or_none(text_mask)  # read once per call, not at every step

        def given(x: Tensor) -> Tensor:
            return x if held is None else torch.where(held[0], held[1], x)

        # condition frames are written into the start; held again at every step unless the bug-2 compat flag is set
        hold = (lambda x: x) if cfg.compat_condition_drift else given

        K = self.path.vocab_size
        x = given(self.path.source(shape, generator, device))
        grid = cfg.time_grid(math.prod(latent_shape)).tolist()
        still_first = cfg.compat_still_first_step and self.path.still_at_start
        for k in tqdm(range(cfg.steps), disable=not progress, desc="sample"):
            t, h = grid[k], grid[k + 1] - grid[k]
            if still_first and k == 0 and k < cfg.steps - 1:
                continue  # no rate at t = 0: x stays the noise (the last step always samples, as theirs)
            x = hold(x)
            z = self._logits(text_ids, mask, x, guided if use_cfg and t < cfg.cfg_trunc else None)
            if z.shape != (*shape, K):
                raise ValueError(
                    f"model: expected logits of shape {(*shape, K)}, got {tuple(z.shape)}"
                )
            last = k == cfg.steps - 1
            if last and cfg.argmax_last:
                x1_hat = z.argmax(-1)
            else:
                x1_hat = categorical(z, generator, dtype=self._dtype).view(shape)
            x1_hat = hold(x1_hat)
            x = x1_hat if last else self.path.step(x, x1_hat, t, h, generator=generator)
        return hold(x)


# ---- tasks ---------------------------------------------------------------------------------


def _given(
    sampler: EulerSampler,
    text_ids: Tensor,
    text_mask: Tensor,
    num_frames: int,
    frames: dict[int, Tensor],
    **kwargs,
) -> Tensor:
    """Sample (B, num_frames, h, w) with frames[i] (long (B, h, w)) given at latent index i."""
    first = next(iter(frames.values()))
    check_tensor("frames", first, torch.long, (text_ids.shape[0], "h", "w"))
    batch, h, w = first.shape
    if not all(0 <= i < num_frames for i in frames):
        raise ValueError(
            f"num_frames: expected > every given frame index {sorted(frames)}, got {num_frames}"
        )
    ids = torch.zeros(batch, num_frames, h, w, dtype=torch.long, device=first.device)
    given = torch.zeros(batch, num_frames, dtype=torch.bool, device=first.device)
    for i, frame in frames.items():
        check_tensor(f"frames[{i}]", frame, torch.long, (batch, h, w))
        ids[:, i], given[:, i] = frame, True
    return sampler.sample(
        text_ids, text_mask, (num_frames, h, w), condition_ids=ids, condition_frames=given, **kwargs
    )


def text_to_image(
    sampler: EulerSampler, text_ids: Tensor, text_mask: Tensor, latent_hw: tuple[int, int], **kwargs
) -> Tensor:
    """One latent frame from text: ids long (B, 1, h, w). kwargs go to EulerSampler.sample."""
    return sampler.sample(text_ids, text_mask, (1, *latent_hw), **kwargs)


def text_to_video(
    sampler: EulerSampler,
    text_ids: Tensor,
    text_mask: Tensor,
    latent_shape: tuple[int, int, int],
    **kwargs,
) -> Tensor:
    """All T latent frames from noise: ids long (B, T, h, w)."""
    return sampler.sample(text_ids, text_mask, latent_shape, **kwargs)


def image_to_video(
    sampler: EulerSampler,
    text_ids: Tensor,
    text_mask: Tensor,
    first_frame: Tensor,
    num_frames: int,
    **kwargs,
) -> Tensor:
    """first_frame long (B, h, w) given as latent frame 0 -> ids long (B, num_frames, h, w)."""
    return _given(sampler, text_ids, text_mask, num_frames, {0: first_frame}, **kwargs)


def interpolate(
    sampler: EulerSampler,
    text_ids: Tensor,
    text_mask: Tensor,
    first_frame: Tensor,
    last_frame: Tensor,
    num_frames: int,
    **kwargs,
) -> Tensor:
    """First and last latent frames (B, h, w) given -> ids long (B, num_frames, h, w), num_frames >= 2."""
    if num_frames < 2:
        raise ValueError(f"num_frames: expected >= 2 for interpolation, got {num_frames}")
    return _given(
        sampler,
        text_ids,
        text_mask,
        num_frames,
        {0: first_frame, num_frames - 1: last_frame},
        **kwargs,
    )


def extrapolate(
    sampler: EulerSampler,
    text_ids: Tensor,
    text_mask: Tensor,
    context: Tensor,
    num_frames: int,
    **kwargs,
) -> Tensor:
    """context long (B, k, h, w) given as the first k latent frames -> ids long (B, num_frames, h, w)."""
    check_tensor("context", context, torch.long, (text_ids.shape[0], "k", "h", "w"))
    if not 1 <= context.shape[1] < num_frames:
        raise ValueError(
            f"context: expected 1 <= k < num_frames={num_frames} frames, got k={context.shape[1]}"
        )
    return _given(
        sampler, text_ids, text_mask, num_frames, dict(enumerate(context.unbind(1))), **kwargs
    )


def long_video(
    sampler: EulerSampler,
    text_ids: Tensor,
    text_mask: Tensor,
    latent_shape: tuple[int, int, int],
    num_windows: int,
    context_frames: int,
    **kwargs,
) -> Tensor:
    """Sliding windows of T latent frames; window n > 0 is conditioned on the last `context_frames`
    frames of window n - 1 and adds T - context_frames new ones.

    Returns ids long (B, T + (num_windows - 1) * (T - context_frames), h, w).
    """
    T = latent_shape[0]
    if not isinstance(num_windows, int) or num_windows < 1:
        raise ValueError(f"num_windows: expected an integer >= 1, got {num_windows!r}")
    if not isinstance(context_frames, int) or not 1 <= context_frames < T:
        raise ValueError(
            f"context_frames: expected an integer in [1, T={T}), got {context_frames!r}"
        )
    window = text_to_video(sampler, text_ids, text_mask, latent_shape, **kwargs)
    pieces = [window]
    for _ in range(num_windows - 1):
        window = extrapolate(sampler, text_ids, text_mask, window[:, -context_frames:], T, **kwargs)
        pieces.append(window[:, context_frames:])
    return torch.cat(pieces, dim=1)
