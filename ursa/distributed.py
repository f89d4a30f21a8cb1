"""torch.distributed for the training loop: process-group setup, rank helpers, batch sharding, launch.

One training step consumes a global batch of `train.batch_size` clips (`ursa.train._batch_index`);
rank r of W takes the contiguous slice [r * B/W, (r + 1) * B/W) of it and splits that into
`train.grad_accum` micro-batches, so the optimisation is the same for any number of processes.

The process group is set up from the usual torchrun / SLURM variables (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT; submitit's TorchDistributedEnvironment exports them) with a
timeout, so a rank that dies leaves the others blocked for at most that long; `launch` runs N
local processes with torch.multiprocessing and terminates the rest as soon as one fails.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

# A collective waits this long for a peer before failing (a dead peer's job is ended by its
# launcher or by srun --kill-on-bad-exit long before); the first one of a SLURM multi-task run
# waits while rank 0 prepares the run's data. $URSA_DIST_TIMEOUT_S overrides it.
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Rank:
    """This process's place in the job: rank in [0, world), world size, local rank on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0


def current() -> Rank:
    """The Rank of this process: from the initialised process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return Rank(
            dist.get_rank(),
            dist.get_world_size(),
            int(os.environ.get("LOCAL_RANK", dist.get_rank())),
        )
    return Rank()


def init_from_env(device: str = "cpu", timeout_s: float | None = None) -> Rank:
    """Join the process group described by the environment (WORLD_SIZE > 1), once; gloo for CPU
    training, nccl for CUDA. A CUDA rank is pinned to cuda:LOCAL_RANK. Returns this process's Rank
    (a single process when WORLD_SIZE is unset or 1: nothing is initialised)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        return current()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(
            f"distributed training: WORLD_SIZE={world} but the environment lacks {missing}; expected "
            f"the variables torchrun, ursa.distributed.launch or submitit's TorchDistributedEnvironment set"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    timeout_s = timeout_s or float(os.environ.get("URSA_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return current()


_announced: list[bool] = []


def announce(train: bool, device: str = "cpu") -> None:
    """Rank 0 of a multi-task job (WORLD_SIZE > 1): tell the other ranks, waiting in
    `await_announcement`, whether there is training to join; only the first call of a process
    broadcasts (rank 0 announces True before training and False on its way out)."""
    if _announced or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    init_from_env(device)
    dist.broadcast_object_list([train], src=0)
    _announced.append(train)


def await_announcement(device: str = "cpu") -> bool:
    """Ranks > 0: join the group and wait for rank 0's `announce`; True: train with it."""
    init_from_env(device)
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def world_from_env() -> int:
    """WORLD_SIZE of the job this process belongs to (1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def shutdown() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(index: Tensor, rank: Rank) -> Tensor:
    """Rank's contiguous slice of a global batch `index` (long (B,)), B divisible by rank.world."""
    per = index.shape[0] // rank.world
    return index[rank.rank * per : (rank.rank + 1) * per]


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of `x` over ranks (in place, asynchronous on the device: no host sync); x itself in one process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


_host_group: list[Any] = []


def host_group() -> Any:
    """A process group for small CPU tensors (flags, counts): the default one under gloo, a gloo
    group beside NCCL (made on first use: a collective, so every rank must reach it at the same
    point of the program)."""
    if dist.get_backend() == "gloo":
        return None
    if not _host_group:
        _host_group.append(dist.new_group(backend="gloo"))
    return _host_group[0]


def host_max(value: int) -> int:
    """The largest `value` over ranks, through the host (no device sync); `value` in one process."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return value
    x = torch.tensor([value])
    dist.all_reduce(x, op=dist.ReduceOp.MAX, group=host_group())
    return int(x.item())


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (a picklable value; `obj` itself in one process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return obj


def all_true(flag: bool) -> bool:
    """Whether `flag` holds on every rank (`flag` itself in one process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        flags: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(flags, bool(flag))
        return all(flags)
    return bool(flag)


def free_port() -> int:
    """A TCP port free on this host right now (for a local rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(local_rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(
        RANK=str(local_rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(local_rank),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    try:
        fn(*args)
    finally:
        shutdown()


def launch(
    fn: Callable[..., Any], nprocs: int, *args: Any, threads: int = 1, start_method: str = "spawn"
) -> None:
    """Run fn(*args) in `nprocs` local processes forming one process group (ranks 0..nprocs-1).

    fn must be picklable (a module-level function); it calls ursa.train.train (which joins the
    group from the environment). If any process fails, the others are terminated and
    torch.multiprocessing's ProcessRaisedException / ProcessExitedException names the rank; no
    process is left waiting on a dead peer. `threads`: torch threads per process. start_method
    "fork" skips re-importing torch in each process (seconds each; CPU only: never after CUDA
    was initialised in the parent)."""
    if nprocs < 1:
        raise ValueError(f"nprocs: expected an integer >= 1, got {nprocs!r}")
    import torch.multiprocessing as mp

    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    mp.start_processes(
        _entry,
        args=(nprocs, free_port(), _threaded(fn, threads), args),
        nprocs=nprocs,
        join=True,
        start_method=start_method,
    )


class _threaded:
    """fn with torch.set_num_threads(threads) first (picklable, unlike a closure)."""

    def __init__(self, fn: Callable[..., Any], threads: int) -> None:
        self.fn, self.threads = fn, threads

    def __call__(self, *args: Any) -> Any:
        torch.set_num_threads(self.threads)
        return self.fn(*args)
