"""How the training loop spreads over processes: the micro-batch split, the DDP / FSDP2 wrapping
(with activation checkpointing and torch.compile), gradient synchronisation per micro-batch, and
the states of checkpoints and exports: full (unsharded, gathered on rank 0) or sharded (each
rank's own part, as torch.distributed.checkpoint writes and reshards it). Files: ursa/checkpoint.py;
process groups: ursa/distributed.py."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.tensor import DTensor, distribute_tensor

from ursa.distributed import Rank
from ursa.ema import EMA

if TYPE_CHECKING:
    from ursa.train_config import TrainConfig


def micro_batch(config: TrainConfig, rank: Rank) -> int:
    """Clips per micro-batch: batch_size / (processes x grad_accum), which must divide evenly."""
    parts = rank.world * config.grad_accum
    if config.batch_size % parts:
        raise ValueError(
            f"train.batch_size: expected a multiple of processes x grad_accum = {rank.world} x "
            f"{config.grad_accum} = {parts} (the global batch is split evenly), got {config.batch_size}"
        )
    return config.batch_size // parts


def _enable_activation_checkpointing(model: nn.Module) -> None:
    """Recompute activations in backward: the transformers backbone's own switch (non-reentrant)."""
    for module in model.modules():
        if hasattr(module, "gradient_checkpointing_enable") and getattr(
            module, "supports_gradient_checkpointing", False
        ):
            hooks = cast(Any, module)  # transformers' PreTrainedModel, found by duck typing
            if hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5 names it so
                hooks.activation_checkpointing_enable(
                    activation_checkpointing_kwargs={"use_reentrant": False}
                )
            else:
                hooks.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )
            return
    raise ValueError(
        f"train.activation_checkpointing: expected a model with a transformers backbone, "
        f"got {type(model).__name__} without one"
    )


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks (members of every nn.ModuleList): FSDP2's shard units."""
    return [
        block for module in model.modules() if isinstance(module, nn.ModuleList) for block in module
    ]


def compile_blocks(model: nn.Module) -> None:
    """torch.compile each transformer block in place (regional compilation, as torchtitan does): the
    blocks share one graph, compiled once; the head loss (ursa/loss.py), the embedding and the
    rotary tables stay eager, and parameter names (checkpoints, FSDP2) are unchanged."""
    _match_inductor_simd()
    for block in _blocks(model):
        block.compile()


# bits per vector of ATen's CPU kernel levels (torch.backends.cpu.get_cpu_capability())
_SIMD_BITS = {"AVX2": 256, "AVX512": 512}


def _match_inductor_simd() -> None:
    """Inductor's CPU kernels use the vector width of ATen's kernel level. Left to pick it itself
    under ATEN_CPU_CAPABILITY=avx2 (the harness's pin, harness/cpu.py) on an AVX-512 host,
    torch 2.14's compiled blocks gave a NaN loss at the first step; an explicit width (any of
    256, 512 or scalar) trains like eager (tests/ursa/test_train_scale.py). A width set by the
    user stays."""
    import torch._inductor.config as inductor

    bits = _SIMD_BITS.get(str(torch.backends.cpu.get_cpu_capability()))
    if inductor.cpp.simdlen is None and bits is not None:
        inductor.cpp.simdlen = bits


def fsdp_policy(config: TrainConfig):
    """FSDP2's MixedPrecisionPolicy of `train.fsdp_bf16`: parameters all-gathered and used in bf16
    (half the all-gather bytes, no per-matmul casts), gradients reduce-scattered and kept in fp32
    beside the fp32 sharded master weights and AdamW; the default policy (fp32 throughout) otherwise."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if not config.fsdp_bf16:
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)


def wrap(
    model: nn.Module, config: TrainConfig, rank: Rank, device: torch.device
) -> tuple[nn.Module, nn.Module | None]:
    """(the module the loop calls, the DDP wrapper or None). FSDP2 shards `model` in place."""
    if config.activation_checkpointing:
        _enable_activation_checkpointing(model)
    if config.compile:  # before FSDP2 / DDP wrap the blocks, as torchtitan orders it
        compile_blocks(model)
    ddp = None
    net = model
    if rank.world > 1 and config.parallel == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (rank.world,))
        policy = fsdp_policy(config)
        for block in _blocks(model):
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
    elif rank.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = ddp = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    return net, ddp


def grad_sync(model: nn.Module, ddp: nn.Module | None, sync: bool):
    """Context of one micro-batch: gradients are reduced across processes only when `sync` (the last)."""
    if ddp is not None and not sync:
        return cast(Any, ddp).no_sync()  # DistributedDataParallel
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        cast(Any, model).set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """(model, optimizer) state gathered in full on rank 0's CPU (empty elsewhere); the optimizer's
    keyed by parameter name, so it loads into any sharding. A collective under FSDP: every rank calls it."""
    return get_state_dict(model, optimizer, options=_FULL)


def set_full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, weights: dict, optim_state: dict
) -> None:
    """Load a full state (as `full_state` gives it, read back on every rank) into any sharding."""
    set_state_dict(
        model,
        optimizer,
        model_state_dict=weights,
        optim_state_dict=optim_state,
        options=StateDictOptions(full_state_dict=True),
    )


def full_weights(model: nn.Module) -> dict[str, Tensor]:
    return cast(
        dict[str, Tensor], get_model_state_dict(model, options=_FULL)
    )  # full: plain tensors


def fsdp_sharded(model: nn.Module) -> bool:
    """Whether `model`'s parameters are FSDP2 shards (DTensors): its own state_dict is then not the full one."""
    return any(isinstance(p, DTensor) for p in model.parameters())


def sharded_state(model: nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None) -> dict:
    """{"model", "optimizer"[, "ema"]}: this rank's part of the training state, for
    torch.distributed.checkpoint (DTensor shards under FSDP2, whole tensors otherwise; the
    optimizer's keyed by parameter name). Nothing is gathered or copied: the values are the live
    tensors. A fresh optimizer gets its (zero) state first, so the keys are those of a trained one."""
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    if ema is not None:
        state["ema"] = ema.state_dict()
    return state


def set_sharded_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None, state: dict
) -> None:
    """Load a state laid out as `sharded_state` gives it (filled by torch.distributed.checkpoint)."""
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"]
    )
    if ema is not None and "ema" in state:
        ema.load_state_dict(state["ema"])


def full_ema(ema: EMA, main: bool = True) -> dict[str, Tensor]:
    """The EMA shadow in full on `main`'s CPU ({} elsewhere). DTensor shards are gathered one tensor
    at a time on the device (a collective under FSDP: every rank calls it) and only `main` (rank 0,
    the one that writes files) copies them to its host, so a node's host memory holds one copy, not
    one per rank."""
    out = {}
    for name, shadow in ema.state_dict().items():
        full = shadow.full_tensor() if isinstance(shadow, DTensor) else shadow
        if main:
            out[name] = full.detach().cpu()
    return out


def like_shard(shadow: Tensor, full: Tensor) -> Tensor:
    """`full` (a whole CPU tensor) laid out like `shadow`: sharded as it is when it is a DTensor."""
    if isinstance(shadow, DTensor):
        return distribute_tensor(full.to(shadow.device), shadow.device_mesh, shadow.placements)
    return full.to(shadow.device)
