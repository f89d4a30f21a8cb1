"""Argument checks for tensors, each raising one-line ValueErrors of the form
"name: expected <what>, got <what came>", e.g.

    visual_ids: expected int64 tensor of shape (N, T, h, w), got float32 of shape (2, 3)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

FLOAT = "float"  # as `dtypes`: any floating-point dtype
Dtypes = torch.dtype | Sequence[torch.dtype] | str
Shape = Sequence[
    int | str | None
]  # per dim: a fixed size, a free dim's name ("B", "T"), or None ("*")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def describe(x: object) -> str:
    """ "int64 of shape (2, 3)" for a tensor, the type name for anything else."""
    return (
        f"{_dtype_name(x.dtype)} of shape {tuple(x.shape)}"
        if isinstance(x, torch.Tensor)
        else type(x).__name__
    )


def check_tensor(name: str, x: object, dtypes: Dtypes, shape: Shape | None = None) -> None:
    """ValueError unless `x` is a tensor of one of `dtypes` (FLOAT: any float dtype) matching
    `shape` (one entry per dim: an int must match, a str or None matches any size; None: any shape)."""
    if isinstance(dtypes, str):  # FLOAT, the one string dtypes takes
        dtype_ok, want = isinstance(x, torch.Tensor) and x.is_floating_point(), FLOAT
    else:
        allowed = (dtypes,) if isinstance(dtypes, torch.dtype) else tuple(dtypes)
        dtype_ok = isinstance(x, torch.Tensor) and x.dtype in allowed
        want = " or ".join(map(_dtype_name, allowed))
    ok = (
        isinstance(x, torch.Tensor)
        and dtype_ok
        and (
            shape is None
            or (
                x.dim() == len(shape)
                and all(not isinstance(s, int) or s == n for s, n in zip(shape, x.shape))
            )
        )
    )
    if not ok:
        dims = (
            ""
            if shape is None
            else " of shape (" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        )
        raise ValueError(f"{name}: expected {want} tensor{dims}, got {describe(x)}")


def check_ids(name: str, x: object, high: int, shape: Shape | None = None) -> torch.Tensor:
    """`x` itself, after a ValueError unless it is an int64 or int32 tensor (of `shape`, see
    check_tensor) with every value in [0, high)."""
    check_tensor(name, x, (torch.int64, torch.int32), shape)
    assert isinstance(x, torch.Tensor)  # check_tensor raised otherwise; narrows x for the checker
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= high):
        raise ValueError(
            f"{name}: expected ids in [0, {high}), got values in [{int(x.min())}, {int(x.max())}]"
        )
    return x


def check_time(
    name: str, t: float | torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """A time (float, or float tensor of any shape) with values in [0, 1] -> float64 tensor of the
    same shape, on `device` (None: the tensor's own, or the CPU for a float)."""
    if isinstance(t, torch.Tensor):
        if not t.is_floating_point():
            raise ValueError(
                f"{name}: expected a float tensor or float in [0, 1], got dtype {t.dtype}"
            )
        tt = t.to(device=device, dtype=torch.float64)
    elif isinstance(t, (int, float)) and not isinstance(t, bool):
        tt = torch.tensor(float(t), dtype=torch.float64, device=device)
    else:
        raise ValueError(
            f"{name}: expected a float tensor or float in [0, 1], got {type(t).__name__}"
        )
    if tt.numel() and not bool(((tt >= 0) & (tt <= 1)).all()):
        if bool(tt.isnan().any()):
            raise ValueError(f"{name}: expected values in [0, 1], got NaN")
        raise ValueError(
            f"{name}: expected values in [0, 1], got values in [{float(tt.min())}, {float(tt.max())}]"
        )
    return tt
