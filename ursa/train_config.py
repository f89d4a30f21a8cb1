"""The training settings: the one schema of a run's `train:` section, read by the training loop
(ursa.train) and by what it drives (ursa.parallel, ursa.checkpoint)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ursa.schedule import ShiftRule


class TrainConfig(BaseModel):
    """Optimisation and timestep-schedule settings: the one schema of a run's `train:` section.

    The harness validates specs with this same model, so a field added here is a spec key at once.
    `shift_rule` "resolution" replaces `shift` by `ursa.schedule.shift_for_tokens` of the training
    clips' token count (T * h * w); "fixed" uses `shift` as given.
    """

    model_config = ConfigDict(
        extra="forbid", validate_default=True, validate_assignment=True, allow_inf_nan=False
    )

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
    # full: rank 0 gathers the whole model + optimizer and writes them (model.safetensors + state.pt);
    # sharded: every rank writes its own shards (torch.distributed.checkpoint), nothing is gathered
    # (for models whose full state strains one host); both resume on any number of processes
    checkpoint_format: Literal["full", "sharded"] = "full"
    # fractions of `steps` after which a copy of the weights is kept in out_dir/snapshots/step_<n>/
    # (the points of a learning curve); 1.0 is the final model
    snapshots: list[float] = Field(default_factory=list)
    device: str = "cpu"
    bf16: bool = False
    grad_accum: int = Field(
        1, ge=1
    )  # micro-batches per process and step: batch_size / (processes x grad_accum) clips each
    parallel: Literal["ddp", "fsdp"] = (
        "ddp"  # how W > 1 processes share the model (fsdp: FSDP2 fully_shard)
    )
    # FSDP2 (parallel fsdp, several processes): parameters all-gathered and computed in bf16,
    # gradients reduced in fp32 into fp32 master weights and AdamW (MixedPrecisionPolicy)
    fsdp_bf16: bool = False
    activation_checkpointing: bool = (
        False  # recompute each layer's activations in backward (memory for compute)
    )
    compile: bool = False  # torch.compile each transformer block (regional; compiled once, shared by every block)
    ema_decay: float = Field(
        0.0, ge=0, lt=1
    )  # > 0: keep an EMA of the weights; sampling then uses it
    # losses are kept on the device and read back (one host sync) every log_every steps, at every
    # checkpoint and snapshot; losses.csv still gets one row per step. None: 1 on the CPU (a read
    # costs nothing there), 10 on an accelerator
    log_every: int | None = Field(None, ge=1)
    # batch: one draw over the global batch, as one process has always done (every process draws
    # the numbers for the whole batch, cheap, and reads and corrupts only its own clips with its
    # slice of them); clip: a noise seed per clip (a process's clips do not depend on the batch)
    corruption: Literal["batch", "clip"] = "batch"
    # a batch whose captions are right-padded to its longest: "mask", one model call with an
    # attention mask (SDPA then has no flash kernel, and GQA repeats k/v); "split", one call per
    # caption length with the padding cut off, no mask (the fast kernels), the same loss and
    # gradients up to float summation order (captions padded elsewhere than the right: "mask")
    padded_captions: Literal["mask", "split"] = "mask"
    # the visual head's loss: "chunked" (ursa/loss.py), or an optional fused linear + cross-entropy
    # kernel, "liger" (liger-kernel) or "cce" (cut-cross-entropy), if installed (not dependencies)
    head_kernel: Literal["chunked", "liger", "cce"] = "chunked"
    tensorboard: bool = False  # also write loss, lr, tokens/s and memory as TensorBoard events in out_dir/tensorboard

    def snapshot_steps(self) -> list[int]:
        """The distinct steps (>= 1) at which snapshots are kept, ascending."""
        return sorted({max(1, round(f * self.steps)) for f in self.snapshots}) if self.steps else []

    @model_validator(mode="after")
    def _probabilities_sum(self) -> TrainConfig:
        bad = [f for f in self.snapshots if not 0 < f <= 1]
        if bad:
            raise ValueError(
                f"snapshots: fractions of the training steps in (0, 1], got {bad[0]!r}"
            )
        if self.fsdp_bf16 and self.parallel != "fsdp":
            raise ValueError(
                f"fsdp_bf16: expected parallel 'fsdp' (it is FSDP2's mixed precision), got parallel "
                f"{self.parallel!r}; use bf16 (autocast) for one process or DDP"
            )
        total = self.p_first + self.p_first_last + self.p_first_k
        if total > 1.0 + 1e-9:
            raise ValueError(f"p_first + p_first_last + p_first_k must be <= 1, got {total:g}")
        return self
