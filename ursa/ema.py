"""Exponential moving average of a model's weights (the weights a large run samples from).

shadow <- shadow + (1 - decay) * (param - shadow) after every optimiser step, with one fused
`torch._foreach_lerp_` over all tensors (no host sync). The shadow is kept in float32 on the
parameters' device, keyed like the model's state_dict so it can be written with the model's own
save path and loaded by `URSAModel.from_pretrained`. Under FSDP2 the parameters are DTensors and
the shadow shards alongside them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """Shadow copy of `model`'s floating-point parameters; `decay` in (0, 1)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema decay: expected a value in (0, 1), got {decay!r}")
        self.decay = decay
        self.names = [n for n, p in model.named_parameters() if p.dtype.is_floating_point]
        params = dict(model.named_parameters())
        self.shadow = [params[n].detach().clone().float() for n in self.names]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards the model's current parameters."""
        params = dict(model.named_parameters())
        torch._foreach_lerp_(
            self.shadow, [params[n].detach().float() for n in self.names], 1.0 - self.decay
        )

    def state_dict(self) -> dict[str, Tensor]:
        """{parameter name: shadow tensor} (float32)."""
        return dict(zip(self.names, self.shadow))

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = set(self.names) ^ set(state)
        if missing:
            raise ValueError(
                f"ema state: expected the model's parameter names, got mismatched {sorted(missing)[:5]}"
            )
        for s, n in zip(self.shadow, self.names):
            s.copy_(state[n])
