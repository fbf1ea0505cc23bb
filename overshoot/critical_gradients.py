"""Critical Gradients (McRae et al., ICLR 2022, arXiv 2106.10708) around any torch optimizer.

Each parameter keeps a buffer of its top-C past gradients ("critical gradients"), keyed by
gradient norm. Per step, the current gradient g is aggregated with the buffer and the inner
optimizer steps with the aggregate:

    mean: (g + κ Σ_c g_c) / (n + 1)        sum: g + κ mean_c g_c       (n = gradients held)

then g enters the buffer if the buffer has room or its norm beats the smallest stored key (which
it replaces), and every stored key is multiplied by ``decay``, so old gradients make way. With
``synced`` (the paper's default) the key of every tensor in a group is the sum of the group's
per-tensor gradient norms, so a group keeps the gradients of the same steps.

``CriticalGradients(SGD(...))`` is SGD_C, around RMSprop/Adam/AdamW it is RMSprop_C/Adam_C/
AdamW_C. The buffer holds the raw gradients and the inner optimizer adds its own weight decay
to the aggregate, which matches the paper's optimizers when weight decay is 0 or decoupled.
Memory: C copies of the parameters. No host synchronisation: the buffer is updated with tensor
ops, empty slots carry the key -inf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from overshoot.inner import WrappingOptimizer

__all__ = ["CriticalGradients"]

AGGREGATIONS = ("mean", "sum")


class CriticalGradients(WrappingOptimizer):
    """Step ``optimizer`` with the current gradient aggregated with the top-``topc`` past ones."""

    def __init__(
        self,
        optimizer: Optimizer,
        topc: int = 10,
        decay: float = 0.7,
        kappa: float = 1.0,
        aggr: str = "mean",
        synced: bool = True,
    ) -> None:
        if not (isinstance(topc, int) and topc >= 1):
            raise ValueError(f"Invalid topc: {topc} (must be an integer >= 1)")
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"Invalid decay: {decay} (must be in (0, 1])")
        if not kappa >= 0.0:
            raise ValueError(f"Invalid kappa: {kappa} (must be >= 0)")
        if aggr not in AGGREGATIONS:
            raise ValueError(f"Invalid aggr: {aggr!r} (valid: {', '.join(AGGREGATIONS)})")
        defaults = {"topc": topc, "decay": decay, "kappa": kappa, "aggr": aggr, "synced": synced}
        super().__init__(optimizer, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Replace each gradient by its aggregate with the buffer, update the buffer, step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            norms = torch._foreach_norm([p.grad for p in params])
            keys = [torch.stack(norms).sum()] * len(params) if group["synced"] else norms
            for p, key in zip(params, keys, strict=True):
                self._aggregate_and_keep(p, key, group)
        self.optimizer.step()
        return loss

    def _aggregate_and_keep(self, p: Tensor, key: Tensor, group: dict[str, Any]) -> None:
        grad = p.grad
        assert grad is not None
        state = self.state[p]
        if not state:
            state["critical_grads"] = grad.new_zeros((group["topc"], *grad.shape))
            state["critical_norms"] = torch.full_like(key, float("-inf")).repeat(group["topc"])
        grads: Tensor = state["critical_grads"]
        keys: Tensor = state["critical_norms"]
        kappa = group["kappa"]
        held = torch.isfinite(keys).sum()
        if group["aggr"] == "mean":
            aggregate = (grad + kappa * grads.sum(0)) / (held + 1)
        else:
            aggregate = grad + kappa * grads.sum(0) / held.clamp(min=1)
        slot = torch.argmin(keys)
        enters = key > keys[slot]
        grads[slot] = torch.where(enters, grad, grads[slot])
        keys[slot] = torch.where(enters, key, keys[slot])
        keys.mul_(group["decay"])
        grad.copy_(aggregate)
