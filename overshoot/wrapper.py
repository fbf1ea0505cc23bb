"""Exact Overshoot around any torch optimizer, keeping the last update as one extra buffer.

Per step: restore θ = θ′ − γ u, run the inner optimizer with the gradient taken at θ′, store the
new update u = θ_{t+1} − θ_t and hold θ′ = θ_{t+1} + γ u. This is the two-model reference in one
model (equal up to float rounding), for Adam, NAdam, LaProp, SOAP, ... It is the oracle the
efficient SGDO/AdamO are tested against and the reference's ``adamW_overshoot_replication``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim import Optimizer

from overshoot.base import (
    Kernel,
    OvershootOptimizer,
    buckets,
    check_fused,
    check_overshoot_hparams,
    scalars,
)
from overshoot.inner import WrappingOptimizer

__all__ = ["Overshoot"]


def _restore_kernel(params: list[Tensor], updates: list[Tensor], overshoot: Tensor) -> None:
    for p, u in zip(params, updates, strict=True):
        base = p - overshoot * u
        p.copy_(base)
        u.copy_(base)


def _overshoot_kernel(params: list[Tensor], updates: list[Tensor], overshoot: Tensor) -> None:
    for p, u in zip(params, updates, strict=True):
        update = p - u
        u.copy_(update)
        p.add_(overshoot * update)


_RESTORE_KERNEL = Kernel(_restore_kernel)
_OVERSHOOT_KERNEL = Kernel(_overshoot_kernel)


class Overshoot(OvershootOptimizer, WrappingOptimizer):
    """Wrap ``optimizer`` so its gradients are taken γ× further along the last update (exact).

    Memory: the inner optimizer's state plus one buffer per parameter. The parameters hold θ′;
    use ``move_to_base()`` / ``base_weights()`` to evaluate at θ. The shifts around the inner
    step are foreach passes, or with ``fused=True`` one compiled pass each (CPU and CUDA).
    """

    def __init__(
        self, optimizer: Optimizer, overshoot: float = 5.0, fused: bool | None = None
    ) -> None:
        check_overshoot_hparams(overshoot)
        self._fused = bool(fused)
        super().__init__(optimizer, {"overshoot": overshoot})

    @property
    def compiles(self) -> bool:
        return self._fused

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Step the inner optimizer at the base weights with the gradients taken at θ′."""
        loss = self._begin_step(closure)
        params: list[Tensor] = []
        keys: list[tuple[torch.device, torch.dtype, float, float]] = []
        new: list[Tensor] = []
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state:
                    if p.grad is None:
                        continue
                    new.append(p)
                    state = self.state[p]
                    state["overshoot_update"] = torch.zeros_like(p)
                    state["overshoot_prev"] = 0.0
                params.append(p)
                keys.append((p.device, p.dtype, state["overshoot_prev"], group["overshoot"]))
                state["overshoot_prev"] = group["overshoot"]
        if self._fused:
            check_fused("Overshoot", new)
        moved = [([params[i] for i in idx], key[2:]) for key, idx in buckets(keys).items()]
        steps = [(ps, self._updates(ps), gammas) for ps, gammas in moved]
        for ps, us, (gamma_prev, _) in steps:
            if self._fused:
                _RESTORE_KERNEL(ps, us, *scalars(ps[0].dtype, gamma_prev))
            else:
                torch._foreach_sub_(ps, us, alpha=gamma_prev)
                torch._foreach_copy_(us, ps)
        self.optimizer.step()
        for ps, us, (_, gamma) in steps:
            if self._fused:
                _OVERSHOOT_KERNEL(ps, us, *scalars(ps[0].dtype, gamma))
            else:
                torch._foreach_neg_(us)
                torch._foreach_add_(us, ps)
                torch._foreach_add_(ps, us, alpha=gamma)
        return loss

    def _updates(self, params: list[Tensor]) -> list[Tensor]:
        return [self.state[p]["overshoot_update"] for p in params]

    def _shift(self, to_base: bool) -> None:
        sign = 1.0 if to_base else -1.0
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if state and "overshoot_update" in state:  # θ − θ′ = −γ u
                    p.add_(state["overshoot_update"], alpha=-sign * state["overshoot_prev"])
