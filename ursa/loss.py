"""The x1-prediction loss at the visual head, without materialising the logits.

Training needs sum_i w_i * CE(Linear(h_i), x1_i) over every visual token i, with K = 64,000
classes. Written plainly (head -> float32 logits -> cross_entropy) it holds a (tokens, K) float32
logits tensor, its log-softmax and its gradient: at 10k tokens 2.6 GB each, read and written
several times, all memory-bound work. `linear_cross_entropy` computes the same sum a chunk of
rows at a time and, because the loss is a scalar at the end of the graph, the chunk's gradients in
the same pass (backward only scales them by the incoming gradient): the head's three matmuls are
the plain ones, one (rows, K) float32 buffer lives at a time, and nothing is recomputed.

Precision follows autocast as the plain head does: the matmuls run in the autocast dtype (bf16 on
GPU), logits, softmax and the loss in float32, and the weight gradient is summed over chunks in
float32.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

CHUNK_ELEMENTS = 2**26  # rows x K per chunk: one 256 MiB float32 buffer (1,048 rows at K = 64,000)


def _compute_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    """The dtype F.linear would compute in here: the autocast dtype when autocast is on."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(hidden.dtype, weight.dtype)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        hidden: Tensor,
        weight: Tensor,
        targets: Tensor,
        weights: Tensor | None,
        dtype: torch.dtype,
        rows: int,
        needs_grad: bool,
    ) -> Tensor:
        with torch.autocast(hidden.device.type, enabled=False):  # dtypes are set explicitly below
            return _LinearCrossEntropy._forward(
                ctx, hidden, weight, targets, weights, dtype, rows, needs_grad
            )

    @staticmethod
    def _forward(
        ctx,
        hidden: Tensor,
        weight: Tensor,
        targets: Tensor,
        weights: Tensor | None,
        dtype: torch.dtype,
        rows: int,
        needs_grad: bool,
    ) -> Tensor:
        w_c = weight.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if needs_grad else None
        grad_weight = (
            torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            if needs_grad
            else None
        )
        for start in range(0, hidden.shape[0], rows):
            part = slice(start, start + rows)
            h_c, y = hidden[part].to(dtype), targets[part]
            z = (h_c @ w_c.T).float()  # (rows, K) logits
            lse = torch.logsumexp(z, dim=1)
            ce = lse - z.gather(1, y[:, None]).squeeze(1)  # (rows,)
            scale = None if weights is None else weights[part].float()
            total += (ce if scale is None else ce * scale).sum()
            if grad_hidden is not None and grad_weight is not None:  # needs_grad
                z.sub_(
                    lse[:, None]
                ).exp_()  # softmax, in place: z is the chunk's only (rows, K) buffer
                z[torch.arange(z.shape[0], device=z.device), y] -= (
                    1.0  # d CE / d logits = softmax - onehot
                )
                if scale is not None:
                    z.mul_(scale[:, None])
                g = z.to(dtype)
                grad_hidden[part] = (g @ w_c).to(hidden.dtype)
                grad_weight += (g.T @ h_c).float()
        if needs_grad:
            ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (
            grad_hidden * grad_output.to(grad_hidden.dtype),
            (grad_weight * grad_output).to(ctx.weight_dtype),
            None,
            None,
            None,
            None,
            None,
        )


IGNORE = -100  # the fused kernels' ignore_index: targets of zero-weight tokens


def _liger(hidden: Tensor, weight: Tensor, targets: Tensor) -> Tensor:
    from liger_kernel.transformers.fused_linear_cross_entropy import (
        LigerFusedLinearCrossEntropyLoss,
    )

    return LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE, reduction="sum")(
        weight, hidden, targets
    ).float()


def _cce(hidden: Tensor, weight: Tensor, targets: Tensor) -> Tensor:
    from cut_cross_entropy import linear_cross_entropy as cce

    return cce(hidden, weight, targets, ignore_index=IGNORE, reduction="sum").float()


# train.head_kernel -> (module to import, pip package, loss(hidden, weight, targets) summed over
# targets != IGNORE). Optional: neither is a dependency of ursa-bench.
FUSED = {
    "liger": ("liger_kernel", "liger-kernel", _liger),
    "cce": ("cut_cross_entropy", "cut-cross-entropy", _cce),
}
_kernel: contextvars.ContextVar[str] = contextvars.ContextVar("head_kernel", default="chunked")


def check_kernel(name: str) -> None:
    """ValueError unless head kernel `name` ("chunked", or a FUSED one whose package imports) can run."""
    if name == "chunked":
        return
    if name not in FUSED:
        raise ValueError(
            f"train.head_kernel: expected 'chunked' or one of {sorted(FUSED)}, got {name!r}"
        )
    module, package, _ = FUSED[name]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(
            f"train.head_kernel: {name!r} needs the optional package `{package}` (pip install "
            f"{package}; it is not a dependency of ursa-bench), which does not import here: {exc}; "
            f"use head_kernel 'chunked'"
        ) from None


@contextlib.contextmanager
def head_kernel(name: str) -> Iterator[None]:
    """Within: linear_cross_entropy runs the fused kernel `name` (check_kernel first). A fused kernel
    takes 0/1 weights only (zero-weight tokens become ignored targets), as training's are."""
    check_kernel(name)
    token = _kernel.set(name)
    try:
        yield
    finally:
        _kernel.reset(token)


def _fused(name: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    return FUSED[name][2]


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    weights: Tensor | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> Tensor:
    """sum_i weights_i * CE(hidden_i @ weight.T, targets_i) as a float32 scalar.

    hidden float (N, D); weight float (K, D) (a Linear's weight, no bias); targets long (N,) in
    [0, K); weights float (N,) or None (all 1). Equal to
    `(F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="none") * weights).sum()`
    and its gradients, to float rounding; differentiable once (no double backward). Within
    `head_kernel("liger" | "cce")` an optional fused kernel computes it instead (0/1 weights only).
    """
    kernel = _kernel.get()
    if (
        kernel != "chunked"
    ):  # within head_kernel(...): weights are 0/1 (training's noisy-frame mask)
        return _fused(kernel)(
            hidden,
            weight,
            targets if weights is None else torch.where(weights > 0, targets, IGNORE),
        )
    rows = max(1, chunk_elements // weight.shape[0])
    needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    return _LinearCrossEntropy.apply(
        hidden, weight, targets, weights, _compute_dtype(hidden, weight), rows, needs_grad
    )
