"""What training writes and reads back: checkpoints, losses.csv (one row per step, one
formatter), snapshots, and the rank-0 log writers (TensorBoard, W&B). ursa/train.py drives them.

A checkpoint (out_dir/checkpoint) holds the weights, AdamW, the EMA, the LR schedule, every RNG
state, the step and the data position, in one of two formats (`train.checkpoint_format`):

  full     model.safetensors (save_pretrained layout) + state.pt with the optimizer (keyed by
           parameter name) and the EMA: everything gathered on rank 0, which writes it all.
  sharded  torch.distributed.checkpoint files: every rank writes its own part of the model,
           optimizer and EMA (__<rank>_0.distcp; rank 0 also the .metadata index), rank 0 a small
           state.pt (schedule, RNG, step, data position, losses, config). Nothing is gathered;
           the last step's checkpoint also holds the full weights (save_pretrained layout).

Both are written to one temp directory (every rank into the same one, named by rank 0) and moved
into place by rank 0 (park the previous, replace, drop the previous); resume reads either format
whatever the configured one (a sharded checkpoint has .metadata or .distcp files) into any number
of processes: the full state is loaded into the current sharding, the sharded one resharded by
torch.distributed.checkpoint. A damaged checkpoint (truncated or missing file, bad state) is
reported and removed, and the previous one (checkpoint.old, left by a writer killed between
parking and replacing) or a fresh start is used."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.metadata import Metadata, TensorStorageMetadata
from torch.distributed.tensor import DTensor

from ursa import distributed
from ursa.ema import EMA
from ursa.io import atomic_write, disk_error, temp_tag
from ursa.parallel import (
    fsdp_sharded,
    full_ema,
    full_state,
    full_weights,
    like_shard,
    set_full_state,
    set_sharded_state,
    sharded_state,
)

if TYPE_CHECKING:
    from ursa.train_config import TrainConfig

CHECKPOINT = "checkpoint"
SNAPSHOTS = "snapshots"
LOSSES = "losses.csv"
TENSORBOARD = "tensorboard"
STATE = "state.pt"
WEIGHTS = "model.safetensors"  # as ursa.model.WEIGHTS_NAME
METADATA = ".metadata"  # torch.distributed.checkpoint's index of a sharded checkpoint's files
# what every state.pt holds; a full checkpoint's also holds "optimizer"
STATE_KEYS = frozenset({"scheduler", "rng", "step", "losses", "data_position"})


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
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def save_weights(
    model_cls: type, model: nn.Module, weights: dict[str, Tensor] | None, directory: Path
) -> None:
    """Write `model` as save_pretrained does; `weights` (a full CPU state: FSDP-gathered or EMA)
    replaces the module's own, through an empty shell of the model's class (no second copy in memory)."""
    if weights is None:
        cast(Any, model).save_pretrained(directory)  # URSAModel.save_pretrained
        return
    with torch.device("meta"):
        shell = model_cls(model.config, seed=None)
    shell.load_state_dict(weights, assign=True, strict=False)
    shell.save_pretrained(directory)


def _temp_dir(out_dir: Path, tag: str) -> Path:
    return out_dir / f".{CHECKPOINT}.tmp-{tag}"


def _discard(tmp: Path, final: Path, exc: BaseException) -> BaseException:
    """Remove the temp directory of a failed write; the error to raise (a full disk: OSError(ENOSPC)
    naming the checkpoint, told before the removal frees the space)."""
    err = disk_error(exc, final)
    shutil.rmtree(tmp, ignore_errors=True)
    return err


def _move_into_place(out_dir: Path, tmp: Path) -> Path:
    """Make the complete temp directory `tmp` out_dir/checkpoint.

    A directory cannot be os.replace'd over a non-empty one: park the previous checkpoint, move the
    new one in, then drop the old (resume falls back to .old if killed in between). A leftover .old
    is first renamed to a name of its own, so it never blocks the rename."""
    final, old = out_dir / CHECKPOINT, out_dir / f"{CHECKPOINT}.old"
    if final.exists():
        if old.exists():
            trash = out_dir / f".{CHECKPOINT}.old.tmp-{temp_tag()}"
            os.replace(old, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _write_full(out_dir: Path, write_weights: Callable[[Path], None], state: dict) -> Path:
    """Rank 0: the weights (write_weights(dir): save_pretrained layout) + state.pt into a temp dir,
    moved into place."""
    tmp = _temp_dir(out_dir, temp_tag())
    try:
        write_weights(tmp)
        torch.save(state, tmp / STATE)
    except BaseException as exc:
        err = _discard(tmp, out_dir / CHECKPOINT, exc)
        if err is exc:
            raise
        raise err from exc
    return _move_into_place(out_dir, tmp)


@contextlib.contextmanager
def _quiet_single_process():
    """torch.distributed.checkpoint without a process group warns that it assumes one process: it is one."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="torch.distributed is (disabled, )?unavailable or uninitialized"
        )
        yield


def _no_dist() -> bool:
    return not (dist.is_available() and dist.is_initialized())


def _write_sharded(
    out_dir: Path,
    write_weights: Callable[[Path], None] | None,
    shards: dict,
    state: dict,
    main: bool,
) -> None:
    """Every rank: its shards (torch.distributed.checkpoint.save, a collective) into the temp dir
    rank 0 names; rank 0 state.pt (and write_weights(dir) when given) into the same dir, then
    (after a barrier) moves it into place."""
    final = out_dir / CHECKPOINT
    tmp = _temp_dir(out_dir, distributed.broadcast_object(temp_tag() if main else None))
    try:
        with _quiet_single_process():
            dcp.save(shards, checkpoint_id=tmp, no_dist=_no_dist())
        if main:
            torch.save(state, tmp / STATE)
            if write_weights is not None:
                write_weights(tmp)
    except BaseException as exc:  # dcp.save raises on every rank when one fails
        if not main:
            raise
        err = _discard(tmp, final, exc)
        if err is exc:
            raise
        raise err from exc
    distributed.barrier()  # every rank's shards are on disk (dcp.save has waited for them too)
    if main:
        _move_into_place(out_dir, tmp)


def save_checkpoint(
    out_dir: Path,
    checkpoint_format: str,
    model_cls: type,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    state: dict,
    *,
    final: bool = False,
) -> Path:
    """Write out_dir/checkpoint in `checkpoint_format` ("full" or "sharded", see the module
    docstring). A collective: every rank calls it, with the same `state` (the small part: schedule,
    RNG, step, data position, losses, config...; rank 0's is written). `final`: the run's last
    checkpoint, which in the sharded format also gets the model's full weights (save_pretrained
    layout), so the launcher of a distributed run reads the trained model as from a full one.
    Returns when the checkpoint is in place on every rank.

    Every name this writes besides the final ones is unique to the writing process
    (`ursa.io.temp_tag`, rank 0's), so two writers never share a temp directory and a sweep can
    tell a killed writer's leftovers; a failed write removes its temp directory (a full disk raises
    OSError(ENOSPC) naming the checkpoint)."""
    if checkpoint_format not in ("full", "sharded"):
        raise ValueError(
            f"train.checkpoint_format: expected 'full' or 'sharded', got {checkpoint_format!r}"
        )
    main = distributed.current().main
    gathered = fsdp_sharded(
        model
    )  # the model's own state_dict is then a shard: write the gathered one

    if checkpoint_format == "full":
        model_state, optim_state = full_state(model, optimizer)  # collectives under FSDP
        ema_state = full_ema(ema, main) if ema is not None else None
        if main:
            state = {**state, "optimizer": optim_state}
            if ema_state is not None:
                state["ema"] = ema_state
            _write_full(
                out_dir,
                lambda d: save_weights(model_cls, model, model_state if gathered else None, d),
                state,
            )
    else:
        weights = full_weights(model) if final and gathered else None  # a collective under FSDP
        write = (lambda d: save_weights(model_cls, model, weights, d)) if final else None
        _write_sharded(out_dir, write, sharded_state(model, optimizer, ema), state, main)
    distributed.barrier()  # no rank runs ahead of a checkpoint being written
    return out_dir / CHECKPOINT


def is_sharded(directory: Path) -> bool:
    """Whether a checkpoint directory is in the sharded format: it has torch.distributed.checkpoint's
    .metadata or a .distcp shard file (a damaged one may have lost either)."""
    return (directory / METADATA).exists() or any(directory.glob("*.distcp"))


def find_checkpoint(out_dir: Path) -> Path | None:
    """The newest checkpoint directory of out_dir (either format), None without one."""
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        if (out_dir / name / STATE).is_file():
            return out_dir / name
    return None


def _shard_index(found: Path) -> Metadata:
    """The .metadata of a sharded checkpoint, after checking that every file it lists is there and
    long enough (a truncated or missing shard is found before anything is loaded)."""
    if not (found / METADATA).is_file():
        raise ValueError(
            f"lacks {METADATA} (torch.distributed.checkpoint's index of its .distcp shards)"
        )
    try:
        metadata = FileSystemReader(found).read_metadata()
    except Exception as exc:  # noqa: BLE001 - any unreadable index is damage
        raise ValueError(f"{METADATA}: unreadable ({type(exc).__name__}: {exc})") from exc
    ends: dict[str, int] = {}
    for info in (metadata.storage_data or {}).values():
        ends[info.relative_path] = max(ends.get(info.relative_path, 0), info.offset + info.length)
    for name, end in sorted(ends.items()):
        if not (found / name).is_file():
            raise ValueError(f"lacks {name}, a shard file its {METADATA} lists")
        size = (found / name).stat().st_size
        if size < end:
            raise ValueError(f"{name}: {size} bytes, expected at least {end} (truncated)")
    return metadata


def _has(metadata: Metadata, prefix: str) -> bool:
    return any(key.startswith(f"{prefix}.") for key in metadata.state_dict_metadata)


def _tensors(obj: Any) -> list[Tensor]:
    """The tensors of a state dict, in a fixed order: this rank's local part of each DTensor."""
    if isinstance(obj, DTensor):
        return [obj.to_local()]
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, list):
        return [t for v in obj for t in _tensors(v)]
    return []


def _host_backup(state: dict) -> list[Tensor]:
    """Host copies of this rank's live state tensors (its shards): what a failed in-place read
    restores. On the host, so a resume needs no second copy of the model + AdamW (+ EMA) on the GPU."""
    return [t.detach().to("cpu", copy=True) for t in _tensors(state)]


@torch.no_grad()
def _restore(state: dict, backup: list[Tensor]) -> None:
    for live, saved in zip(_tensors(state), backup):
        live.copy_(saved)


def _ema_from_weights(ema: EMA, model: nn.Module) -> None:
    """The EMA restarted at the model's weights (a checkpoint written without one)."""
    params = dict(model.named_parameters())
    ema.load_state_dict({n: params[n].detach() for n in ema.names})


def _read(
    found: Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None
) -> tuple[dict, Callable[[], None]]:
    """(state.pt, the call that loads the rest into model, optimizer and EMA) of one checkpoint
    directory; this rank alone reads and checks its files (no collective), the call is a collective."""
    state = torch.load(found / STATE, map_location="cpu", weights_only=False)
    if not isinstance(state, dict):
        raise ValueError(f"{STATE}: expected a dict, got {type(state).__name__}")
    sharded = is_sharded(found)
    missing = (STATE_KEYS if sharded else STATE_KEYS | {"optimizer"}) - set(state)
    if missing:
        raise ValueError(f"{STATE} lacks {sorted(missing)}")
    if not sharded:
        weights = load_file(found / WEIGHTS, device="cpu")

        def apply_full() -> None:
            set_full_state(model, optimizer, weights, state["optimizer"])
            if ema is not None and state.get("ema"):
                saved = state["ema"]
                ema.load_state_dict(
                    {n: like_shard(s, saved[n]) for n, s in ema.state_dict().items()}
                )
            elif ema is not None:
                _ema_from_weights(ema, model)

        return state, apply_full
    metadata = _shard_index(found)
    with_ema = ema is not None and _has(metadata, "ema")

    def apply_sharded() -> None:
        # in place into this rank's live state (its shards), after a host copy of them: a read that
        # fails half-way is undone from the host, so the model and optimizer are left as they were
        target = sharded_state(model, optimizer, ema if with_ema else None)
        backup = _host_backup(target)
        try:
            with _quiet_single_process():
                dcp.load(
                    target, checkpoint_id=found, no_dist=_no_dist()
                )  # reshards to the current layout
        except BaseException:
            _restore(target, backup)
            raise
        del backup
        set_sharded_state(model, optimizer, ema, target)
        if ema is not None and not with_ema:
            _ema_from_weights(ema, model)

    return state, apply_sharded


def _summary(exc: BaseException) -> str:
    """One line on why reading failed: a CheckpointException (every rank's traceback) as its first
    rank's error."""
    if isinstance(exc, CheckpointException) and exc.failures:
        rank, (first, _) = min(exc.failures.items())
        lines = str(first).splitlines() or [""]
        return f"{CheckpointException.__name__} on rank {rank}: {type(first).__name__}: {lines[0][:200]}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def load_checkpoint(
    out_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None
) -> tuple[Path, dict] | None:
    """(checkpoint dir, state.pt) of the newest readable checkpoint, either format, after loading its
    weights, optimizer and EMA (if `ema`: restarted at the loaded weights when the checkpoint has
    none) into the current sharding. A collective: every rank calls it, and the ranks agree on each
    checkpoint before loading it. A damaged one (truncated or missing file, bad state) is reported,
    removed (by rank 0) and the next one tried, so a damaged checkpoint costs the steps since the
    previous one (or a restart), never the run. None (a fresh optimizer, the EMA at the weights): none."""
    main = distributed.current().main
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        found = out_dir / name
        if not distributed.all_true((found / STATE).is_file()):
            continue
        error: BaseException | None = None
        try:
            state, apply = _read(found, model, optimizer, ema)
        except Exception as exc:  # noqa: BLE001 - any damage: fall back to an older checkpoint
            error = exc
        if distributed.all_true(error is None):  # no rank enters the loading collectives alone
            try:
                apply()
            except (Exception, CheckpointException) as exc:  # noqa: BLE001 - a BaseException, that one
                error = exc
            if distributed.all_true(error is None):
                return found, state
        if main:
            why = _summary(error) if error is not None else "another rank could not read it"
            print(
                f"{found}: damaged checkpoint ({why}); removed, resuming from an older one or from the start",
                file=sys.stderr,
            )
            trash = out_dir / f".{name}.tmp-{temp_tag()}"
            with contextlib.suppress(OSError):
                os.replace(found, trash)
                shutil.rmtree(trash, ignore_errors=True)
        distributed.barrier()
    optimizer.state.clear()  # reading may have given it a (zero) state: a fresh start has none
    if ema is not None:
        _ema_from_weights(ema, model)
    return None


def read_state(directory: Path) -> dict:
    """state.pt of a checkpoint directory of either format, with the EMA weights (full, CPU) under
    "ema" when the run kept them (read from the shards of a sharded one). This process alone reads,
    with no collective, so it serves the process that launched a distributed run, or rank 0 of one."""
    state = torch.load(directory / STATE, map_location="cpu", weights_only=False)
    if "ema" not in state and is_sharded(directory):
        try:
            metadata = _shard_index(directory)
        except ValueError as exc:
            raise ValueError(
                f"{directory}: {exc}; expected a complete sharded checkpoint"
            ) from None
        if _has(metadata, "ema"):
            ema = {
                key.removeprefix("ema."): torch.empty(md.size, dtype=md.properties.dtype)
                for key, md in metadata.state_dict_metadata.items()
                if key.startswith("ema.") and isinstance(md, TensorStorageMetadata)
            }
            try:
                with _quiet_single_process():
                    dcp.load({"ema": ema}, checkpoint_id=directory, no_dist=True)
            except (Exception, CheckpointException) as exc:  # noqa: BLE001
                raise ValueError(
                    f"{directory}: could not read the EMA weights from its shards ({_summary(exc)}); "
                    f"expected a complete sharded checkpoint"
                ) from None
            state["ema"] = ema
    return state


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
            raise ValueError(
                "train.tensorboard: expected the `tensorboard` package (a dependency of "
                "ursa-bench: pip install -e .), got none installed"
            )
        self.path = out_dir / LOSSES
        self.csv = open(self.path, "a", newline="") if main else None
        self.tb = self.wandb = None
        if main and config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / TENSORBOARD))
        if (
            main
            and os.environ.get("WANDB_PROJECT")
            and importlib.util.find_spec("wandb") is not None
        ):
            import wandb

            self.wandb = wandb.init(
                project=os.environ["WANDB_PROJECT"],
                dir=str(out_dir),
                resume="allow",
                config=config.model_dump(),
                id=os.environ.get("WANDB_RUN_ID"),
            )

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
