"""Training for the URSA denoiser: corrupt x1 along a probability path, predict x1 back.

One step (see docs/math.md, "Frame-wise asynchronous timesteps" and "Training loss"):
  t ~ frame_timesteps (B, T)      one time per latent frame (async) or per clip (sync), shifted;
                                  condition frames held clean at t = 1
  x_t ~ p_t(. | x1)                path.sample with t broadcast per frame (B, T, 1, 1)
  loss = CE(model(text, x_t), x1)  fp32 logits, mean over visual tokens of the noisy frames (the model's
                                  chunked head loss, ursa/loss.py: the logits are never held whole)

Choice: tokens of frames held clean (t = 1) are left out of the loss. The authors average over
every visual token, but a clean frame is given to the model as input, so predicting it is
copying, carries no learning signal and only dilutes the gradient of the frames being denoised.

The loop is resumable bit-for-bit on CPU: a checkpoint holds the model, AdamW, the LR schedule,
every RNG state (torch, python, numpy and the two generators driving timesteps and corruption),
the step and the data position (a seeded permutation per epoch, so the position is the count of
samples consumed). Checkpoints are written to a temporary directory and moved into place
(formats and the fallback to the previous one when damaged: ursa/checkpoint.py).

Scale (process groups: ursa/distributed.py; wrapping and checkpoint states: ursa/parallel.py): the
same loop runs on N processes (DDP, or FSDP2 with `parallel: fsdp`) with `grad_accum`
micro-batches per process; the global batch is always
`batch_size` clips, every process draws the step's timesteps and noise for the whole global
batch from the same generators and reads and corrupts only its own clips with its slice of the
draws (with `corruption: clip`, one noise seed per clip instead), and each micro-batch's loss is
its token sum over the token count of the global batch, so N processes x grad_accum give the
optimisation of one process with the whole batch (up to float summation order). Checkpoints
(`checkpoint_format`) hold either the full (unsharded) state gathered on rank 0 with
torch.distributed.checkpoint's state-dict API and written by it in the single-process format
("full"), or every rank's own shards written by torch.distributed.checkpoint.save, nothing
gathered ("sharded"); either resumes on any number of processes (a sharded one is resharded on
load), and the format is read from the files, so the setting may change between resumes.

Preemption (ursa/preempt.py): USR2 or SIGTERM is noted, every process stops at the same step
boundary, writes that step's checkpoint, and hands the signal on (submitit: requeue); no finished
step is lost.

Non-finite losses: no update uses a NaN or infinite loss or gradient. On the host the gradient
norm is read before each update (free there); on an accelerator the fused AdamW skips the update
on a device flag (no sync) and every later one, until the losses are read back (`log_every`) and
NonFiniteLossError names the step. Either way nothing is checkpointed after it.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ursa import distributed
from ursa.checkpoint import (
    CHECKPOINT,
    SNAPSHOTS,
    Outputs,
    find_checkpoint,
    load_checkpoint,
    read_state,
    rng_state,
    save_checkpoint,
    save_weights,
    set_rng_state,
    write_losses,
)
from ursa.ema import EMA
from ursa.loss import check_kernel, head_kernel
from ursa.parallel import full_ema, full_weights, grad_sync, micro_batch, wrap
from ursa.paths import ProbPath
from ursa.preempt import Watch
from ursa.schedule import frame_timesteps, resolve_shift
from ursa.tensor_checks import FLOAT, check_tensor
from ursa.train_config import TrainConfig


class NonFiniteLossError(FloatingPointError):
    """The training loss (or gradient) became NaN or infinite; no update used it (module docstring:
    "Non-finite losses")."""


@dataclass
class TokenDataset:
    """Pre-tokenised training clips.

    text_ids long (N, L), text_mask bool (N, L) (True = real token), visual_ids long (N, T, h, w).
    """

    text_ids: Tensor
    text_mask: Tensor
    visual_ids: Tensor

    def __post_init__(self) -> None:
        check_tensor("text_ids", self.text_ids, torch.int64, ("N", "L"))
        check_tensor("text_mask", self.text_mask, torch.bool, ("N", "L"))
        check_tensor("visual_ids", self.visual_ids, torch.int64, ("N", "T", "h", "w"))
        n = self.text_ids.shape[0]
        if self.text_mask.shape != self.text_ids.shape:
            raise ValueError(
                f"text_mask: expected shape {tuple(self.text_ids.shape)}, got {tuple(self.text_mask.shape)}"
            )
        if self.visual_ids.shape[0] != n:
            raise ValueError(
                f"visual_ids: expected {n} clips (as text_ids), got {self.visual_ids.shape[0]}"
            )

    def __len__(self) -> int:
        return self.text_ids.shape[0]

    def select(self, index: Tensor) -> TokenDataset:
        """The clips at `index` (long (B,)) as a batch."""
        return TokenDataset(self.text_ids[index], self.text_mask[index], self.visual_ids[index])

    def to(self, device: torch.device | str) -> TokenDataset:
        return TokenDataset(
            self.text_ids.to(device), self.text_mask.to(device), self.visual_ids.to(device)
        )

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(T, h, w) of every clip's id grid."""
        return tuple(self.visual_ids.shape[1:])

    def id_range(self) -> tuple[int, int]:
        """(min, max) visual id over the data set."""
        return int(self.visual_ids.min()), int(self.visual_ids.max())


@runtime_checkable
class ClipSource(Protocol):
    """What `train` reads: N tokenised clips with random access by index.

    TokenDataset holds them in memory (the shapes world); a streaming source (token shards on
    disk) implements the same four members and reads only the clips a batch selects.
    """

    @property
    def latent_shape(self) -> tuple[int, int, int]: ...

    def __len__(self) -> int: ...

    def select(self, index: Tensor) -> TokenDataset: ...

    def id_range(self) -> tuple[int, int]: ...


@dataclass
class TrainResult:
    """losses: one float per step from step 1 (including steps before a resume)."""

    losses: list[float]
    steps: int
    checkpoint_dir: Path
    shift: float  # the shift lambda used (config.shift resolved by config.shift_rule)
    ema: dict[str, Tensor] | None = (
        None  # EMA weights (full, CPU; rank 0) when config.ema_decay > 0
    )


def token_loss_sum(
    model: nn.Module, batch: TokenDataset, x_t: Tensor, t: Tensor, all_real: bool | None = None
) -> Tensor:
    """Sum of the cross-entropy of the x1 prediction over visual tokens of frames with t < 1.

    batch: B clips (visual_ids (B, T, h, w) = x1); x_t long (B, T, h, w); t float (B, T), all on
    the model's device. all_real: whether every caption token of the batch is real, read by the
    caller where the batch was selected (the host), so the model gets no mask and uses its unmasked
    attention kernel; None reads it here (a host sync on an accelerator). Returns a scalar fp32 sum
    (the loss before dividing by the token count), from the model's chunked head loss (ursa/loss.py).
    """
    x1 = batch.visual_ids
    if all_real is None:
        all_real = bool(batch.text_mask.all())
    weights = (t[:, :, None, None] < 1.0).float().expand(x1.shape)
    return model(
        batch.text_ids, x_t, None if all_real else batch.text_mask, targets=x1, weights=weights
    )


def caption_groups(text_mask: Tensor) -> list[tuple[Tensor, int]] | None:
    """[(clip indices long (b,), real caption length n)] grouping the clips of a batch by the length
    of their right-padded captions (text_mask bool (B, L), on the host: no sync), None when some
    caption is not a prefix of real tokens (padding on the left or within)."""
    lengths = text_mask.sum(1)
    if not torch.equal(text_mask, torch.arange(text_mask.shape[1]) < lengths[:, None]):
        return None
    return [((lengths == n).nonzero().flatten(), n) for n in lengths.unique().tolist()]


def even_groups(groups: list[tuple[Tensor, int]], count: int) -> list[tuple[Tensor, int]]:
    """`groups` cut into `count` (>= len(groups), <= the number of clips) by taking clips off the
    largest group: processes of one job make as many model calls each (under DDP / FSDP2 a call
    is a collective), and every call is still one caption length."""
    groups = list(groups)
    while len(groups) < count:
        i = max(range(len(groups)), key=lambda j: len(groups[j][0]))
        index, n = groups.pop(i)
        groups += [(index[:1], n), (index[1:], n)]
    return groups


def split_token_loss_sum(
    model: nn.Module,
    batch: TokenDataset,
    x_t: Tensor,
    t: Tensor,
    groups: list[tuple[Tensor, int]],
    host_mask: Tensor,
) -> Tensor:
    """token_loss_sum of a batch with padded captions, one model call per group of clips with the
    captions cut to n tokens (`caption_groups`: no padding left, so no attention mask and the fast
    kernels stay eligible); host_mask: the batch's text_mask on the host, read there to tell (a
    group of a caption padded elsewhere than the right keeps its mask). The sum over the groups
    is token_loss_sum's to float summation order."""
    total = torch.zeros((), device=x_t.device)
    for index, n in groups:
        idx = index.to(x_t.device)
        part = TokenDataset(
            batch.text_ids[idx, :n], batch.text_mask[idx, :n], batch.visual_ids[idx]
        )
        total = total + token_loss_sum(
            model, part, x_t[idx], t[idx], bool(host_mask[index, :n].all())
        )
    return total


def training_loss(
    model: nn.Module,
    path: ProbPath,
    batch: TokenDataset,
    t: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean cross-entropy of the model's x1 prediction over visual tokens of frames with t < 1.

    batch: B clips with visual_ids (B, T, h, w); t: float (B, T) per-frame times in [0, 1].
    Returns a scalar fp32 loss (0 with zero gradient if every frame is clean).
    """
    x1 = batch.visual_ids
    check_tensor("t", t, FLOAT, tuple(x1.shape[:2]))
    t = t.to(x1.device)
    t_tok = t[:, :, None, None]
    x_t = torch.where(t_tok >= 1.0, x1, path.sample(x1, t_tok, generator=generator))
    count = (t_tok < 1.0).expand_as(x1).sum().clamp_min(1)
    return token_loss_sum(model, batch, x_t, t) / count


@torch.no_grad()
def denoising_loss(
    model: nn.Module,
    path: ProbPath,
    data: ClipSource,
    times: list[float],
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> list[float]:
    """Held-out cross-entropy at fixed noise levels: for each t in `times` (each < 1), every frame
    of every clip is corrupted to time t and the loss is the mean over clips and visual tokens.
    How hard a path makes each noise level, and far less noisy than sampled metrics."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for t in times:
        if not 0 <= t < 1:
            raise ValueError(f"times: expected values in [0, 1), got {t!r}")
        total = 0.0
        for start in range(0, len(data), batch_size):
            batch = data.select(torch.arange(start, min(start + batch_size, len(data)))).to(device)
            tt = torch.full(tuple(batch.visual_ids.shape[:2]), float(t))
            total += training_loss(model, path, batch, tt, generator=generator).item() * len(batch)
        out.append(total / len(data))
    model.train(was_training)
    return out


def _lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warmup over warmup_steps, then cosine from 1 to min_lr_ratio at the last step."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
        1 + math.cos(math.pi * progress)
    )


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (norm gains and biases are not decayed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = (
        {"fused": True} if params and params[0].device.type == "cuda" else {}
    )  # one kernel per step on GPU
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), **fused)


@functools.lru_cache(maxsize=4)
def _permutation(num_clips: int, seed: int, epoch: int) -> Tensor:
    """The order of the clips in `epoch`: long (num_clips,), built once per epoch (and kept: at
    10M clips a randperm takes longer than a GPU step). Callers must not modify it."""
    return torch.randperm(
        num_clips, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)
    )


def _batch_index(position: int, batch_size: int, num_clips: int, seed: int) -> Tensor:
    """Indices (long (batch_size,)) of the batch_size clips after `position` in the stream of
    per-epoch permutations."""
    pos = torch.arange(position, position + batch_size)
    epochs = pos // num_clips
    index = torch.empty(batch_size, dtype=torch.long)
    for epoch in range(int(epochs[0]), int(epochs[-1]) + 1):  # one, or two at an epoch boundary
        sel = epochs == epoch
        index[sel] = _permutation(num_clips, seed, epoch)[pos[sel] % num_clips]
    return index


def _with_dropped_captions(batch: TokenDataset, drop: Tensor | None) -> TokenDataset:
    """`batch` with the captions where drop (bool (B,)) is True made all padding: the empty prompt of
    the unconditional branch classifier-free guidance needs."""
    if drop is None:
        return batch
    return TokenDataset(
        batch.text_ids,
        batch.text_mask & ~drop[:, None].to(batch.text_mask.device),
        batch.visual_ids,
    )


def _corrupt(
    path: ProbPath, x1: Tensor, t: Tensor, seeds: list[int], validate: bool = True
) -> Tensor:
    """x_t ~ p_t(. | x1) for clips x1 long (b, T, h, w) at per-frame times t (b, T) (on x1's device);
    frames with t = 1 stay clean. Clip i's noise comes from a generator seeded seeds[i], so a clip's
    x_t does not depend on how the global batch is split over processes and micro-batches.
    validate=False: ids and times checked on the host already (no device read per clip)."""
    t_tok = t[:, :, None, None]
    noisy = []
    for i, seed in enumerate(seeds):
        g = torch.Generator(device=x1.device).manual_seed(seed)
        noisy.append(path.sample(x1[i : i + 1], t_tok[i : i + 1], generator=g, validate=validate))
    return torch.where(t_tok >= 1.0, x1, torch.cat(noisy))


def _corrupt_part(
    path: ProbPath,
    x1: Tensor,
    t: Tensor,
    noise: tuple[Tensor, ...],
    first: int,
    validate: bool = True,
) -> Tensor:
    """x_t for the clips x1 long (b, T, h, w) (times t (b, T)) that sit at `first` of a global batch
    whose per-token draws are `noise` (path.draw over the whole batch): those clips come out as the
    whole batch's corruption would give them, and only they are read and corrupted."""
    per = x1[0].numel()
    part = tuple(u[first * per : (first + x1.shape[0]) * per] for u in noise)
    t_tok = t[:, :, None, None]
    return torch.where(t_tok >= 1.0, x1, path.sample(x1, t_tok, noise=part, validate=validate))


def resolved_log_every(config: TrainConfig, device: torch.device) -> int:
    """config.log_every, or when None: 1 on the CPU (reading a loss back costs nothing there), 10
    on an accelerator (each read is a host sync that stalls the launch queue)."""
    return config.log_every or (1 if device.type == "cpu" else 10)


def _guarded_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float, halted: Tensor | None
) -> tuple[bool, Tensor | None]:
    """Clip the gradients and step the optimizer unless they are non-finite: (stepped, halted).

    halted None (an optimizer that is not fused): the norm is read on the host first (free on the
    CPU) and a non-finite one returns (False, None) with no update. halted a device flag (a fused
    optimizer): no sync; once a norm is non-finite the flag holds 1 and this and every later update
    is skipped inside the fused kernel (its found_inf, as GradScaler uses it) until the loop reads
    the flag back at its next flush and raises."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if halted is None:
        if not math.isfinite(float(norm)):
            return False, None
        optimizer.step()
        return True, None
    halted = torch.maximum(halted, (~torch.isfinite(norm)).float())
    optimizer.found_inf = halted
    optimizer.step()
    return True, halted


def _non_finite(
    values: list[float], first: int, stop: int, halted_since: bool
) -> NonFiniteLossError:
    """The error for losses `values` of steps first.. (one may be non-finite) when training stops
    at step `stop`; halted_since: updates were skipped on the device (not stopped on the host)."""
    bad = next((first + i for i, v in enumerate(values) if not math.isfinite(v)), None)
    what = (
        f"training loss is {values[bad - first]} at step {bad}"
        if bad is not None
        else f"the gradient norm is not finite at a step in {first}..{stop} (the losses are finite)"
    )
    if halted_since:
        return NonFiniteLossError(
            f"{what}; no update used it (the fused optimizer skipped the updates from "
            f"then on, read back at step {stop}), and no checkpoint was written after it"
        )
    return NonFiniteLossError(
        f"{what}; stopped before the update of step {stop} and before any checkpoint"
    )


def export_model(model: nn.Module, result: TrainResult, directory: str | Path) -> None:
    """Write the model to sample from into `directory` (save_pretrained layout): the EMA weights
    when training kept them, else the model's own (a single-process or DDP model)."""
    if result.ema is None:
        model.save_pretrained(directory)
    else:
        save_weights(type(model), model, result.ema, Path(directory))


def load_result(out_dir: str | Path) -> TrainResult:
    """The TrainResult of a finished train() from its final checkpoint (what the processes of a
    distributed run leave to the one that launched them): losses, steps, shift, EMA weights."""
    found = find_checkpoint(Path(out_dir))
    if found is None:
        raise ValueError(
            f"{out_dir}: expected a training checkpoint ({CHECKPOINT}/state.pt), got none"
        )
    state = read_state(found)
    return TrainResult(
        list(state["losses"]), state["step"], found, state["shift"], ema=state.get("ema")
    )


def _check_text_ids(batch: TokenDataset, text_vocab: int | None) -> None:
    """Raise ValueError unless the caption ids of `batch` (on the host) are in [0, text_vocab).

    Read on the host copy, so no device sync; the visual ids are checked once per data set (their
    range is recorded), but a streaming source has no caption range, so captions are checked per
    batch. On an accelerator a tokenizer/model text-vocabulary mismatch would otherwise surface
    as a device-side assert in the embedding."""
    ids = batch.text_ids
    if text_vocab is None or not ids.numel():
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= text_vocab:
        raise ValueError(
            f"data.text_ids: expected caption ids in [0, {text_vocab}) (the model's text_vocab_size), "
            f"got values in [{low}, {high}]; the text tokenizer that made the data does not match the model"
        )


# ----------------------------------------------------------------------------- one step's batch


@dataclass(frozen=True)
class StepPlan:
    """What every step of one train() call uses unchanged: the run's objects and the facts derived
    from them once (clips per micro-batch in `mine`, the latent shape (T, h, w), the shift)."""

    config: TrainConfig
    path: ProbPath
    data: ClipSource
    model: nn.Module  # the module the optimizer updates
    net: nn.Module  # what the forward pass calls: `model`, or its DDP / compiled wrapper
    ddp: bool
    rank: distributed.Rank
    device: torch.device
    mine: tuple[
        Tensor, ...
    ]  # this rank's clips of the global batch, one long (b,) index per micro-batch
    shape: tuple[int, int, int]  # (T, h, w) of a latent clip
    shift: float
    text_vocab: int | None

    @property
    def bf16(self) -> bool:
        """Autocast to bf16 (config.bf16 takes effect on CUDA only)."""
        return self.config.bf16 and self.device.type == "cuda"

    @property
    def host(self) -> bool:
        """Tensors on the host: reading them back costs no sync (ids and times checked there)."""
        return self.device.type == "cpu"


@dataclass(frozen=True)
class GlobalBatch:
    """The draws of one step for the whole global batch of B clips, identical on every rank.

    index long (B,) clip indices; t float (B, T) per-frame times; drop bool (B,) dropped captions
    (None: p_uncond = 0); count the noisy tokens of the global batch (the loss's denominator);
    noise the batch-wide draws of path.draw (corruption "batch") or seeds long (B,) one noise seed
    per clip (corruption "clip")."""

    index: Tensor
    t: Tensor
    drop: Tensor | None
    count: float
    noise: tuple[Tensor, ...] | None
    seeds: Tensor | None


def draw_global_batch(
    plan: StepPlan, step: int, t_gen: torch.Generator, x_gen: torch.Generator
) -> GlobalBatch:
    """The clips, times, caption dropout and corruption noise of `step` (timesteps, dropout and
    seeds from t_gen on the CPU, batch-wide corruption from x_gen on the device, in that order)."""
    config, (T, h, w) = plan.config, plan.shape
    index = _batch_index(step * config.batch_size, config.batch_size, len(plan.data), config.seed)
    t = frame_timesteps(
        config.batch_size,
        T,
        mode=config.frame_schedule,
        shift=plan.shift,
        p_first=config.p_first,
        p_first_last=config.p_first_last,
        p_first_k=config.p_first_k,
        generator=t_gen,
    )
    # drawn only when enabled, so p_uncond = 0 keeps the RNG stream
    drop = (
        torch.rand(config.batch_size, generator=t_gen) < config.p_uncond
        if config.p_uncond > 0
        else None
    )
    count = (
        float((t < 1.0).sum()) * h * w or 1.0
    )  # noisy tokens in the global batch: the loss's denominator
    noise = seeds = None
    if (
        config.corruption == "batch"
    ):  # one draw for the global batch; each rank uses its clips' part
        noise = plan.path.draw(config.batch_size * T * h * w, x_gen, plan.device)
    else:
        seeds = torch.randint(0, 2**62, (config.batch_size,), generator=t_gen)
    return GlobalBatch(index, t, drop, count, noise, seeds)


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch of this rank's clips, ready for the model: batch (on the device, x1 =
    batch.visual_ids (b, T, h, w)), t float (b, T), x_t long (b, T, h, w); all_real, groups and
    host_mask (the captions' mask on the host) choose the model calls without a device sync."""

    batch: TokenDataset
    t: Tensor
    x_t: Tensor
    all_real: bool
    groups: list[tuple[Tensor, int]] | None
    host_mask: Tensor


def micro_batch_inputs(plan: StepPlan, draws: GlobalBatch, part: Tensor) -> MicroBatch:
    """Select, check, move and corrupt the clips `part` (long (b,), positions in the global batch)."""
    config = plan.config
    host_batch = _with_dropped_captions(
        plan.data.select(draws.index[part]), None if draws.drop is None else draws.drop[part]
    )
    _check_text_ids(host_batch, plan.text_vocab)
    all_real = bool(host_batch.text_mask.all())  # read on the host: no device sync in the step
    groups = None
    if config.padded_captions == "split":  # every rank: the calls are collectives
        groups = None if all_real else caption_groups(host_batch.text_mask)
        calls = distributed.host_max(1 if groups is None else len(groups))
        if calls > 1:
            groups = even_groups(
                groups or [(torch.arange(len(host_batch)), host_batch.text_ids.shape[1])], calls
            )
    batch, tk = host_batch.to(plan.device), draws.t[part].to(plan.device)
    if config.corruption == "batch":
        x_t = _corrupt_part(
            plan.path, batch.visual_ids, tk, draws.noise, int(part[0]), validate=plan.host
        )
    else:
        x_t = _corrupt(
            plan.path, batch.visual_ids, tk, draws.seeds[part].tolist(), validate=plan.host
        )
    return MicroBatch(batch, tk, x_t, all_real, groups, host_batch.text_mask)


# ----------------------------------------------------------------------------- one step


def forward_backward(plan: StepPlan, micro: MicroBatch, count: float) -> Tensor:
    """The micro-batch's loss (its token sum over the global batch's `count`), backpropagated;
    returns it detached (a device scalar)."""
    with (
        torch.autocast(plan.device.type, dtype=torch.bfloat16, enabled=plan.bf16),
        head_kernel(plan.config.head_kernel),
    ):
        loss = (
            token_loss_sum(plan.net, micro.batch, micro.x_t, micro.t, micro.all_real)
            if micro.groups is None
            else split_token_loss_sum(
                plan.net, micro.batch, micro.x_t, micro.t, micro.groups, micro.host_mask
            )
        ) / count
    # DDP and FSDP average gradients over ranks; the global loss is their sum
    (loss * plan.rank.world).backward()
    return loss.detach()


def train_step(plan: StepPlan, draws: GlobalBatch) -> Tensor:
    """Forward and backward of this rank's micro-batches of the step (gradients synchronised on
    the last); returns this rank's share of the step's loss, a device scalar (not read back)."""
    step_loss = torch.zeros((), device=plan.device)
    for k, part in enumerate(plan.mine):
        micro = micro_batch_inputs(plan, draws, part)
        with grad_sync(plan.model, plan.ddp, k == len(plan.mine) - 1):
            loss = forward_backward(plan, micro, draws.count)
        step_loss += loss
    return step_loss


def _update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: EMA | None,
    grad_clip: float,
    halted: Tensor | None,
    pending: list[Tensor],
    n: int,
) -> Tensor | None:
    """The update of step n: clip and step the optimizer (_guarded_step), then the LR schedule and
    the EMA; returns the device flag of skipped updates (None off a fused optimizer). A non-finite
    gradient norm read on the host raises NonFiniteLossError, with the losses not yet read back
    (`pending`), before any update."""
    stepped, halted = _guarded_step(model, optimizer, grad_clip, halted)
    if not stepped:
        unread = distributed.all_reduce_sum(torch.stack(pending)).tolist() if pending else []
        raise _non_finite(unread, n - len(unread) + 1 if unread else n, n, False)
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    if ema is not None:
        ema.update(model)
    return halted


# ----------------------------------------------------------------------------- the loop


def _resume(
    out_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    t_gen: torch.Generator,
    x_gen: torch.Generator,
    config: TrainConfig,
) -> tuple[int, list[float]]:
    """(step, losses) of the checkpoint in out_dir, its states loaded into the run's objects (either
    format, resharded to this run's layout); (0, []) without one."""
    loaded = load_checkpoint(out_dir, model, optimizer, ema)
    if loaded is None:
        return 0, []
    found, state = loaded
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"], t_gen, x_gen)
    step, losses = state["step"], list(state["losses"])
    if state["data_position"] != step * config.batch_size:
        raise ValueError(
            f"{found}: data_position {state['data_position']} does not match step {step} "
            f"x batch_size {config.batch_size}"
        )
    return step, losses


class _Log:
    """Where the losses read back at a flush go: losses.csv and the scalars (tokens/s, lr, memory)
    through `out`, the progress bar, and on_step(step, loss) for each step."""

    def __init__(
        self,
        out: Outputs,
        bar: tqdm,
        on_step: Callable[[int, float], None] | None,
        tokens_per_step: int,
        device: torch.device,
        step: int,
    ) -> None:
        self.out, self.bar, self.on_step = out, bar, on_step
        self.tokens_per_step, self.device = tokens_per_step, device
        self.clock, self.clock_step = time.perf_counter(), step

    def flushed(self, first: int, values: list[float], step: int, lr: float) -> None:
        """Losses `values` of steps first..step, read back at the flush of `step`."""
        self.out.losses(first, values)
        elapsed, done = time.perf_counter() - self.clock, step - self.clock_step
        perf = {
            "perf/tokens_per_s": done * self.tokens_per_step / max(elapsed, 1e-9),
            "train/lr": lr,
        }
        if self.device.type == "cuda":
            perf["perf/max_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.out.scalars(step, perf)
        self.clock, self.clock_step = time.perf_counter(), step
        self.bar.update(len(values))
        self.bar.set_postfix(loss=f"{values[-1]:.4f}", tok_s=f"{perf['perf/tokens_per_s']:.0f}")
        if self.on_step is not None:
            for i, v in enumerate(values):
                self.on_step(first + i, v)


def _check_train_inputs(
    path: ProbPath, data: ClipSource, config: TrainConfig, stop_after: int | None
) -> None:
    """ValueError naming the argument unless data, stop_after and the head kernel can train on `path`."""
    if not isinstance(data, ClipSource):
        raise ValueError(
            f"data: expected a ClipSource (e.g. a TokenDataset), got {type(data).__name__}"
        )
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after: expected None or an integer >= 1, got {stop_after!r}")
    low, high = data.id_range()
    if high >= path.vocab_size or low < 0:
        raise ValueError(
            f"data.visual_ids: expected ids in [0, {path.vocab_size}), got range [{low}, {high}]"
        )
    check_kernel(
        config.head_kernel
    )  # before joining a process group: a missing package is a clean error


def train(
    model: nn.Module,
    path: ProbPath,
    data: ClipSource,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train `model` to denoise `data` along `path`; resume from out_dir/checkpoint if present.

    Writes out_dir/checkpoint every config.checkpoint_every steps and at the end, and
    out_dir/losses.csv (step, loss). `stop_after=n` returns right after global step n without
    writing a checkpoint, as a kill would (tests resume from the last periodic checkpoint).
    on_step(step, loss) is called for every step once its loss is read back: right after the step
    with the default `log_every: 1`, else in groups every `log_every` steps (no extra host sync).

    Run in several processes (WORLD_SIZE > 1 in the environment: torchrun, `ursa.distributed.launch`,
    submitit), every process calls train() with the same arguments; it joins the process group,
    trains its share of each global batch, and rank 0 alone writes files and shows progress.

    The parts, as torchtitan splits its trainer: draw_global_batch and micro_batch_inputs (the
    batch), train_step and forward_backward (the step), and this loop (flush, update, log,
    snapshots, checkpoints, preemption).
    """
    _check_train_inputs(path, data, config, stop_after)
    rank = distributed.init_from_env(config.device)
    micro = micro_batch(config, rank)
    device = torch.device(config.device)
    if (
        device.type == "cuda" and rank.world > 1
    ):  # one GPU per process, whatever index the config names
        device = torch.device("cuda", rank.local_rank)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_cls = type(model)
    model.to(device)
    model.train()
    net, ddp = wrap(model, config, rank, device)
    sharded = rank.world > 1 and config.parallel == "fsdp"
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config))
    # Both generators run identically on every rank, drawing for the whole global batch: timesteps,
    # caption dropout and per-clip noise seeds on the CPU; batch-wide corruption on the device.
    t_gen = torch.Generator().manual_seed(config.seed)
    x_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    torch.manual_seed(config.seed)
    ema = EMA(model, config.ema_decay) if config.ema_decay > 0 else None
    step, losses = _resume(out_dir, model, optimizer, ema, scheduler, t_gen, x_gen, config)
    if rank.main:
        write_losses(out_dir, losses)  # drops rows logged after the checkpoint by a killed run
    distributed.barrier()

    T, h, w = data.latent_shape
    plan = StepPlan(
        config,
        path,
        data,
        model,
        net,
        ddp,
        rank,
        device,
        tuple(distributed.shard(torch.arange(config.batch_size), rank).split(micro)),
        (T, h, w),
        resolve_shift(config.shift, config.shift_rule, T * h * w),
        getattr(getattr(model, "config", None), "text_vocab_size", None),
    )
    snapshot_steps = set(config.snapshot_steps())
    log_every = resolved_log_every(config, device)
    last = config.steps if stop_after is None else min(config.steps, stop_after)
    bar = tqdm(total=config.steps, initial=step, disable=not (progress and rank.main), desc="train")
    out = Outputs(out_dir, config, rank.main)
    log = _Log(out, bar, on_step, config.batch_size * T * h * w, device, step)
    pending: list[
        Tensor
    ] = []  # per-step losses of this rank's share, on the device, not yet read back
    # a fused optimizer skips updates on a device flag (no sync); otherwise the norm is read per step
    halted = torch.zeros((), device=device) if optimizer.defaults.get("fused") else None

    def weights_for_files() -> dict | None:
        """Full weights to write (EMA when kept, FSDP-gathered when sharded), None: the model's own."""
        if ema is not None:
            return full_ema(ema, rank.main)
        return full_weights(model) if sharded else None

    def checkpoint() -> None:
        """Every rank: weights, optimizer and EMA gathered to rank 0 or written as shards."""
        out.sync()
        state = {
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(t_gen, x_gen),
            "step": step,
            "data_position": step * config.batch_size,
            "losses": losses,
            "config": config.model_dump(),
            "world_size": rank.world,
            "shift": plan.shift,
        }
        save_checkpoint(
            out_dir,
            config.checkpoint_format,
            model_cls,
            model,
            optimizer,
            ema,
            state,
            final=step == config.steps,
        )

    try:
        with Watch() as preemption:
            while step < last:
                pending.append(train_step(plan, draw_global_batch(plan, step, t_gen, x_gen)))
                n = step + 1
                stopping = (
                    preemption.agreed()
                )  # every rank: a signal on any one checkpoints all at this step
                flush = (
                    n % log_every == 0
                    or n in snapshot_steps
                    or n == last
                    or n % config.checkpoint_every == 0
                    or stopping
                )
                values = None
                if flush:  # one host sync for the steps since the last flush, before this update
                    values = distributed.all_reduce_sum(torch.stack(pending)).tolist()
                    pending, first = [], n - len(values) + 1
                    skipped = halted is not None and bool(halted)  # an earlier update was skipped
                    if skipped or not all(map(math.isfinite, values)):
                        raise _non_finite(values, first, n, skipped)
                halted = _update(
                    model, optimizer, scheduler, ema, config.grad_clip, halted, pending, n
                )
                step = n
                if values is not None:
                    losses.extend(values)
                    log.flushed(first, values, step, scheduler.get_last_lr()[0])
                if step in snapshot_steps:  # before the checkpoint of this step
                    weights = weights_for_files()
                    if rank.main:
                        save_weights(
                            model_cls, model, weights, out_dir / SNAPSHOTS / f"step_{step}"
                        )
                if stop_after is not None and step >= stop_after and step < config.steps:
                    return TrainResult(losses, step, out_dir / CHECKPOINT, plan.shift)
                if step % config.checkpoint_every == 0 or step == config.steps or stopping:
                    checkpoint()
                if stopping and step < config.steps:
                    preemption.hand_over(step, stopping)  # Preempted, submitit's requeue, or go on
    finally:
        bar.close()
        out.close()
    final_ema = full_ema(ema, rank.main) if ema is not None else None
    return TrainResult(
        losses, step, out_dir / CHECKPOINT, plan.shift, ema=final_ema if rank.main else None
    )
