"""Exact Overshoot around any torch optimizer, keeping the last update as one extra buffer.

Per step: restore θ = θ′ − γ u, run the inner optimizer with the gradient taken at θ′, store the
new update u = θ_{t+1} − θ_t and hold θ′ = θ_{t+1} + γ u. This is the two-model reference in one
model (equal up to float rounding), for Adam, NAdam, LaProp, SOAP, ... It is the oracle the
efficient SGDO/AdamO are tested against and the reference's ``adamW_overshoot_replication``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim import Optimizer

from overshoot.base import OvershootOptimizer, check_overshoot_hparams
from overshoot.inner import InnerOptimizer

__all__ = ["Overshoot"]


class Overshoot(OvershootOptimizer, InnerOptimizer):
    """Wrap ``optimizer`` so its gradients are taken γ× further along the last update (exact).

    Memory: the inner optimizer's state plus one buffer per parameter. The parameters hold θ′;
    use ``move_to_base()`` / ``base_weights()`` to evaluate at θ.
    """

    def __init__(self, optimizer: Optimizer, overshoot: float = 5.0) -> None:
        check_overshoot_hparams(overshoot)
        super().__init__(optimizer, {"overshoot": overshoot})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Step the inner optimizer at the base weights with the gradients taken at θ′."""
        self._check_can_step()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        moved = []
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if state:
                    update = state["overshoot_update"]
                    p.sub_(update, alpha=state["overshoot_prev"])
                    update.copy_(p)
                elif p.grad is not None:
                    state = self.state[p]
                    state["overshoot_update"] = p.detach().clone()
                else:
                    continue
                state["overshoot_prev"] = group["overshoot"]
                moved.append((p, state["overshoot_update"]))
        self.optimizer.step()
        for p, update in moved:
            update.neg_().add_(p)
            p.add_(update, alpha=self.state[p]["overshoot_prev"])
        return loss

    def _shift(self, to_base: bool) -> None:
        sign = -1.0 if to_base else 1.0
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if state and "overshoot_update" in state:
                    p.add_(state["overshoot_update"], alpha=sign * state["overshoot_prev"])
