"""Training for the URSA denoiser: corrupt x1 along a probability path, predict x1 back.

One step (see docs/math.md, "Frame-wise asynchronous timesteps" and "Training loss"):
  t ~ frame_timesteps (B, T)      one time per latent frame (async) or per clip (sync), shifted;
                                  condition frames held clean at t = 1
  x_t ~ p_t(. | x1)                path.sample with t broadcast per frame (B, T, 1, 1)
  loss = CE(model(text, x_t), x1)  fp32 logits, mean over visual tokens of the noisy frames

Choice: tokens of frames held clean (t = 1) are left out of the loss. The authors average over
every visual token, but a clean frame is given to the model as input, so predicting it is
copying, carries no learning signal and only dilutes the gradient of the frames being denoised.

The loop is resumable bit-for-bit on CPU: a checkpoint holds the model, AdamW, the LR schedule,
every RNG state (torch, python, numpy and the two generators driving timesteps and corruption),
the step and the data position (a seeded permutation per epoch, so the position is the count of
samples consumed). Checkpoints are written to a temporary directory and moved into place.
"""

from __future__ import annotations

import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from ursa.checks import FLOAT, check_tensor
from ursa.io import atomic_write, disk_error, temp_tag
from ursa.paths import ProbPath
from ursa.schedule import ShiftRule, frame_timesteps, resolve_shift

CHECKPOINT = "checkpoint"
SNAPSHOTS = "snapshots"
LOSSES = "losses.csv"


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; raised before the optimiser steps."""


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
            raise ValueError(f"text_mask: expected shape {tuple(self.text_ids.shape)}, got {tuple(self.text_mask.shape)}")
        if self.visual_ids.shape[0] != n:
            raise ValueError(f"visual_ids: expected {n} clips (as text_ids), got {self.visual_ids.shape[0]}")

    def __len__(self) -> int:
        return self.text_ids.shape[0]

    def select(self, index: Tensor) -> TokenDataset:
        """The clips at `index` (long (B,)) as a batch."""
        return TokenDataset(self.text_ids[index], self.text_mask[index], self.visual_ids[index])

    def to(self, device: torch.device | str) -> TokenDataset:
        return TokenDataset(self.text_ids.to(device), self.text_mask.to(device), self.visual_ids.to(device))

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


class TrainConfig(BaseModel):
    """Optimisation and timestep-schedule settings: the one schema of a run's `train:` section.

    The harness validates specs with this same model, so a field added here is a spec key at once.
    `shift_rule` "resolution" replaces `shift` by `ursa.schedule.shift_for_tokens` of the training
    clips' token count (T * h * w); "fixed" uses `shift` as given.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, validate_assignment=True, allow_inf_nan=False)

    steps: int = Field(200, ge=0)  # 0: no update (an evaluation-only run of a loaded model)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(10, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    grad_clip: float = Field(1.0, gt=0)
    shift: float = Field(1.0, gt=0)
    shift_rule: ShiftRule = "fixed"
    frame_schedule: Literal["async", "sync"] = "async"
    p_first: float = Field(0.0, ge=0, le=1)
    p_first_last: float = Field(0.0, ge=0, le=1)
    p_first_k: float = Field(0.0, ge=0, le=1)
    p_uncond: float = Field(0.0, ge=0, le=1)  # caption dropout: the unconditional branch CFG needs
    seed: int = Field(0, ge=0, lt=2**63)  # torch.manual_seed's range
    checkpoint_every: int = Field(50, ge=1)
    # fractions of `steps` after which a copy of the weights is kept in out_dir/snapshots/step_<n>/
    # (the points of a learning curve); 1.0 is the final model
    snapshots: list[float] = Field(default_factory=list)
    device: str = "cpu"
    bf16: bool = False

    def snapshot_steps(self) -> list[int]:
        """The distinct steps (>= 1) at which snapshots are kept, ascending."""
        return sorted({max(1, round(f * self.steps)) for f in self.snapshots}) if self.steps else []

    @model_validator(mode="after")
    def _probabilities_sum(self) -> TrainConfig:
        bad = [f for f in self.snapshots if not 0 < f <= 1]
        if bad:
            raise ValueError(f"snapshots: fractions of the training steps in (0, 1], got {bad[0]!r}")
        total = self.p_first + self.p_first_last + self.p_first_k
        if total > 1.0 + 1e-9:
            raise ValueError(f"p_first + p_first_last + p_first_k must be <= 1, got {total:g}")
        return self


@dataclass
class TrainResult:
    """losses: one float per step from step 1 (including steps before a resume)."""

    losses: list[float]
    steps: int
    checkpoint_dir: Path
    shift: float  # the shift lambda used (config.shift resolved by config.shift_rule)


def training_loss(
    model: nn.Module, path: ProbPath, batch: TokenDataset, t: Tensor, generator: torch.Generator | None = None
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
    logits = model(batch.text_ids, x_t, batch.text_mask).float()
    ce = F.cross_entropy(logits.flatten(0, -2), x1.flatten(), reduction="none").view_as(x1)
    weight = (t_tok < 1.0).expand_as(x1).to(ce.dtype)
    return (ce * weight).sum() / weight.sum().clamp_min(1.0)


@torch.no_grad()
def denoising_loss(model: nn.Module, path: ProbPath, data: ClipSource, times: list[float],
                   generator: torch.Generator | None = None, batch_size: int = 64) -> list[float]:
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
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (norm gains and biases are not decayed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95))


def _batch_index(position: int, batch_size: int, num_clips: int, seed: int) -> Tensor:
    """Indices of the batch_size clips after `position` in the stream of per-epoch permutations."""
    index, perm_epoch, perm = [], -1, None
    for pos in range(position, position + batch_size):
        epoch = pos // num_clips
        if epoch != perm_epoch:
            perm = torch.randperm(num_clips, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
            perm_epoch = epoch
        index.append(int(perm[pos % num_clips]))
    return torch.tensor(index, dtype=torch.long)


def _rng_state(t_gen: torch.Generator, x_gen: torch.Generator) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "timestep_generator": t_gen.get_state(),
        "corruption_generator": x_gen.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, t_gen: torch.Generator, x_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    t_gen.set_state(state["timestep_generator"])
    x_gen.set_state(state["corruption_generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_checkpoint(out_dir: Path, model: nn.Module, state: dict) -> Path:
    """Write model (save_pretrained) + state.pt to a temp dir, then move it to out_dir/checkpoint.

    Every name this writes besides the two final ones is unique to the writing process
    (`ursa.io.temp_tag`), so two writers never share a temp directory and a sweep can tell a
    killed writer's leftovers; a failed write removes its temp directory (a full disk raises
    OSError(ENOSPC) naming the checkpoint)."""
    final, old = out_dir / CHECKPOINT, out_dir / f"{CHECKPOINT}.old"
    tmp = out_dir / f".{CHECKPOINT}.tmp-{temp_tag()}"
    try:
        model.save_pretrained(tmp)
        torch.save(state, tmp / "state.pt")
    except BaseException as exc:
        err = disk_error(exc, final)
        shutil.rmtree(tmp, ignore_errors=True)
        if err is exc:
            raise
        raise err from exc
    # A directory cannot be os.replace'd over a non-empty one: park the previous checkpoint,
    # move the new one in, then drop the old (resume falls back to .old if killed in between).
    # A leftover .old is first renamed to a name of its own, so it never blocks the rename.
    if final.exists():
        if old.exists():
            trash = out_dir / f".{CHECKPOINT}.old.tmp-{temp_tag()}"
            os.replace(old, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _find_checkpoint(out_dir: Path) -> Path | None:
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        if (out_dir / name / "state.pt").is_file():
            return out_dir / name
    return None


def _load_checkpoint(out_dir: Path, model: nn.Module, device: torch.device) -> tuple[Path, dict] | None:
    """(checkpoint dir, state) of the newest readable checkpoint, its weights loaded into `model`;
    a damaged one (truncated file, bad state) is reported, removed and the next one tried, so a
    damaged checkpoint costs the steps since the previous one (or a restart), never the run."""
    import sys

    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        found = out_dir / name
        if not (found / "state.pt").is_file():
            continue
        try:
            state = torch.load(found / "state.pt", map_location="cpu", weights_only=False)
            weights = load_file(found / "model.safetensors", device=str(device))
            missing = {"optimizer", "scheduler", "rng", "step", "losses", "data_position"} - set(state)
            if missing:
                raise ValueError(f"state.pt lacks {sorted(missing)}")
            model.load_state_dict(weights)
        except Exception as exc:  # noqa: BLE001 - any damage: fall back to an older checkpoint
            print(f"{found}: damaged checkpoint ({type(exc).__name__}: {str(exc)[:200]}); removed, "
                  f"resuming from an older one or from the start", file=sys.stderr)
            trash = out_dir / f".{name}.tmp-{temp_tag()}"
            os.replace(found, trash)
            shutil.rmtree(trash, ignore_errors=True)
            continue
        return found, state
    return None


def _loss_row(step: int, loss: float) -> str:
    """One row of losses.csv; the single formatter of its rows (always '\n' line endings)."""
    return f"{step},{loss!r}\n"


def _write_losses(out_dir: Path, losses: list[float]) -> None:
    """Rewrite losses.csv atomically with rows step = 1..len(losses)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            f.write("step,loss\n")
            f.writelines(_loss_row(i + 1, loss) for i, loss in enumerate(losses))

    atomic_write(out_dir / LOSSES, write)


def _append_loss(log, path: Path, step: int, loss: float) -> None:
    """Append one row to the open losses.csv (flushed); a full disk names the file."""
    try:
        log.write(_loss_row(step, loss))
        log.flush()
    except OSError as exc:
        err = disk_error(exc, path)
        if err is exc:
            raise
        raise err from exc


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
    on_step(step, loss) is called after every optimiser step.
    """
    if not isinstance(data, ClipSource):
        raise ValueError(f"data: expected a ClipSource (e.g. a TokenDataset), got {type(data).__name__}")
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after: expected None or an integer >= 1, got {stop_after!r}")
    low, high = data.id_range()
    if high >= path.vocab_size or low < 0:
        raise ValueError(f"data.visual_ids: expected ids in [0, {path.vocab_size}), got range [{low}, {high}]")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device)
    model.to(device)
    model.train()
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config))
    # Timesteps are drawn on CPU; corruption on the training device (generators are per device).
    t_gen = torch.Generator().manual_seed(config.seed)
    x_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    torch.manual_seed(config.seed)

    step, losses = 0, []
    loaded = _load_checkpoint(out_dir, model, device)
    if loaded is not None:
        found, state = loaded
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], t_gen, x_gen)
        step, losses = state["step"], list(state["losses"])
        if state["data_position"] != step * config.batch_size:
            raise ValueError(f"{found}: data_position {state['data_position']} does not match step {step} "
                             f"x batch_size {config.batch_size}")
    _write_losses(out_dir, losses)  # drops rows logged after the checkpoint by a killed run

    shift = resolve_shift(config.shift, config.shift_rule, math.prod(data.latent_shape))
    snapshot_steps = set(config.snapshot_steps())
    use_bf16 = config.bf16 and device.type == "cuda"
    last = config.steps if stop_after is None else min(config.steps, stop_after)
    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc="train")
    with open(out_dir / LOSSES, "a", newline="") as log:
        while step < last:
            index = _batch_index(step * config.batch_size, config.batch_size, len(data), config.seed)
            batch = data.select(index).to(device)
            T = batch.visual_ids.shape[1]
            t = frame_timesteps(
                config.batch_size, T, mode=config.frame_schedule, shift=shift, p_first=config.p_first,
                p_first_last=config.p_first_last, p_first_k=config.p_first_k, generator=t_gen,
            )
            if config.p_uncond > 0:  # drawn only when enabled, so p_uncond = 0 keeps the RNG stream
                drop = torch.rand(config.batch_size, generator=t_gen) < config.p_uncond
                # an all-padding caption is the empty prompt the sampler's unconditional branch uses
                batch = TokenDataset(batch.text_ids, batch.text_mask & ~drop[:, None].to(device), batch.visual_ids)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = training_loss(model, path, batch, t, generator=x_gen)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"training loss is {loss.item()} at step {step + 1}; stopped before the update")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(loss.item())
            _append_loss(log, out_dir / LOSSES, step, losses[-1])
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if on_step is not None:
                on_step(step, losses[-1])
            if step in snapshot_steps:
                model.save_pretrained(out_dir / SNAPSHOTS / f"step_{step}")  # before the checkpoint of this step
            if stop_after is not None and step >= stop_after and step < config.steps:
                bar.close()
                return TrainResult(losses, step, out_dir / CHECKPOINT, shift)
            if step % config.checkpoint_every == 0 or step == config.steps:
                os.fsync(log.fileno())
                state = {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": _rng_state(t_gen, x_gen),
                    "step": step,
                    "data_position": step * config.batch_size,
                    "losses": losses,
                    "config": config.model_dump(),
                }
                _save_checkpoint(out_dir, model, state)
    bar.close()
    return TrainResult(losses, step, out_dir / CHECKPOINT, shift)
