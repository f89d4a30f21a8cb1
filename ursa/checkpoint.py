"""What training writes and reads back: checkpoints (weights + optimizer, schedule, every RNG
state, step and data position; written to a temp directory and moved into place, a damaged one
falling back to the previous), losses.csv (one row per step, one formatter), snapshots, and the
rank-0 log writers (TensorBoard, W&B). ursa/train.py drives them."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from ursa.io import atomic_write, disk_error, temp_tag

if TYPE_CHECKING:
    from ursa.train import TrainConfig

CHECKPOINT = "checkpoint"
SNAPSHOTS = "snapshots"
LOSSES = "losses.csv"
TENSORBOARD = "tensorboard"


def rng_state(t_gen: torch.Generator, x_gen: torch.Generator) -> dict:
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


def set_rng_state(state: dict, t_gen: torch.Generator, x_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    t_gen.set_state(state["timestep_generator"])
    x_gen.set_state(state["corruption_generator"])
    if "cuda" in state and torch.cuda.is_available():  # a resume may see fewer GPUs than the writer
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def save_weights(model_cls: type, model: nn.Module, weights: dict[str, Tensor] | None, directory: Path) -> None:
    """Write `model` as save_pretrained does; `weights` (a full CPU state: FSDP-gathered or EMA)
    replaces the module's own, through an empty shell of the model's class (no second copy in memory)."""
    if weights is None:
        model.save_pretrained(directory)
        return
    with torch.device("meta"):
        shell = model_cls(model.config, seed=None)
    shell.load_state_dict(weights, assign=True, strict=False)
    shell.save_pretrained(directory)


def save_checkpoint(out_dir: Path, write_weights: Callable[[Path], None], state: dict) -> Path:
    """Write the weights (write_weights(dir): save_pretrained layout) + state.pt to a temp dir,
    then move it to out_dir/checkpoint.

    Every name this writes besides the two final ones is unique to the writing process
    (`ursa.io.temp_tag`), so two writers never share a temp directory and a sweep can tell a
    killed writer's leftovers; a failed write removes its temp directory (a full disk raises
    OSError(ENOSPC) naming the checkpoint)."""
    final, old = out_dir / CHECKPOINT, out_dir / f"{CHECKPOINT}.old"
    tmp = out_dir / f".{CHECKPOINT}.tmp-{temp_tag()}"
    try:
        write_weights(tmp)
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


def find_checkpoint(out_dir: Path) -> Path | None:
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        if (out_dir / name / "state.pt").is_file():
            return out_dir / name
    return None


def load_checkpoint(out_dir: Path, apply: Callable[[dict, dict], None], main: bool = True) -> tuple[Path, dict] | None:
    """(checkpoint dir, state) of the newest readable checkpoint, after apply(weights, state) loaded
    it; a damaged one (truncated file, bad state) is reported, removed (by rank 0) and the next one
    tried, so a damaged checkpoint costs the steps since the previous one (or a restart), never the run."""
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        found = out_dir / name
        if not (found / "state.pt").is_file():
            continue
        try:
            state = torch.load(found / "state.pt", map_location="cpu", weights_only=False)
            weights = load_file(found / "model.safetensors", device="cpu")
            missing = {"optimizer", "scheduler", "rng", "step", "losses", "data_position"} - set(state)
            if missing:
                raise ValueError(f"state.pt lacks {sorted(missing)}")
            apply(weights, state)
        except Exception as exc:  # noqa: BLE001 - any damage: fall back to an older checkpoint
            if main:
                print(f"{found}: damaged checkpoint ({type(exc).__name__}: {str(exc)[:200]}); removed, "
                      f"resuming from an older one or from the start", file=sys.stderr)
                trash = out_dir / f".{name}.tmp-{temp_tag()}"
                with contextlib.suppress(OSError):
                    os.replace(found, trash)
                    shutil.rmtree(trash, ignore_errors=True)
            continue
        return found, state
    return None


def _loss_row(step: int, loss: float) -> str:
    """One row of losses.csv; the single formatter of its rows (always '\n' line endings)."""
    return f"{step},{loss!r}\n"


def write_losses(out_dir: Path, losses: list[float]) -> None:
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


class Outputs:
    """What rank 0 writes while training: losses.csv (one row per step), TensorBoard scalars in
    out_dir/tensorboard, and W&B when the `wandb` package is installed and WANDB_PROJECT is set.
    On other ranks every method is a no-op."""

    def __init__(self, out_dir: Path, config: TrainConfig, main: bool) -> None:
        if main and config.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ValueError("train.tensorboard: expected the `tensorboard` package (a dependency of "
                             "ursa-bench: pip install -e .), got none installed")
        self.path = out_dir / LOSSES
        self.csv = open(self.path, "a", newline="") if main else None
        self.tb = self.wandb = None
        if main and config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / TENSORBOARD))
        if main and os.environ.get("WANDB_PROJECT") and importlib.util.find_spec("wandb") is not None:
            import wandb

            self.wandb = wandb.init(project=os.environ["WANDB_PROJECT"], dir=str(out_dir), resume="allow",
                                    config=config.model_dump(), id=os.environ.get("WANDB_RUN_ID"))

    def losses(self, first_step: int, values: list[float]) -> None:
        for i, loss in enumerate(values):
            if self.csv is not None:
                _append_loss(self.csv, self.path, first_step + i, loss)
            if self.tb is not None:
                self.tb.add_scalar("train/loss", loss, first_step + i)
            if self.wandb is not None:
                self.wandb.log({"train/loss": loss}, step=first_step + i)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            if self.tb is not None:
                self.tb.add_scalar(name, value, step)
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def sync(self) -> None:
        """Everything logged so far on disk (before a checkpoint records the step)."""
        if self.csv is not None:
            os.fsync(self.csv.fileno())
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        for handle in (self.csv, self.tb):
            if handle is not None:
                handle.close()
        if self.wandb is not None:
            self.wandb.finish()
