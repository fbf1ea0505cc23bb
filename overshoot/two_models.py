"""Two-model reference: a base copy of the weights stepped by any optimizer (the ground truth).

The model keeps the overshot weights θ′ and receives the gradients. A second copy of the weights,
θ, is stepped by the base optimizer with those gradients; then θ′ = θ_{t+1} + γ (θ_{t+1} − θ_t).
The base gradients are the model's gradient tensors themselves (aliased as soon as backward
accumulates them), so gradient clipping between backward and step clips what is stepped.
Costs a second copy of the weights; buffers (e.g. BatchNorm statistics) are the model's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from overshoot.base import OvershootOptimizer, check_overshoot_hparams
from overshoot.inner import WrappingOptimizer

__all__ = ["TwoModelOvershoot"]


def _alias_grad(base: Tensor, held: Tensor) -> None:
    base.grad = held.grad


class TwoModelOvershoot(OvershootOptimizer, WrappingOptimizer):
    """Overshoot by keeping two copies of the weights; ``base_optimizer(params)`` builds the base.

    ``params`` are the model's parameters (or param-group dicts); ``base_optimizer`` is any
    callable that builds a torch optimizer from parameters, e.g. ``functools.partial(SGD, lr=0.1,
    momentum=0.9)``. LR schedulers attached to this object drive the base optimizer.
    """

    _exact_shift = True  # the two copies swap

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: Callable[[list[dict[str, Any]]], Optimizer],
        overshoot: float = 5.0,
    ) -> None:
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self._held: list[Tensor] = []
        self._base: list[Tensor] = []
        base_groups = []
        for group in groups:
            held = list(group["params"])
            base = [p.detach().clone() for p in held]
            self._held += held
            self._base += base
            base_groups.append({**group, "params": base})
        check_overshoot_hparams(overshoot)
        super().__init__(base_optimizer(base_groups), {"overshoot": overshoot})
        for held_p, base_p in zip(self._held, self._base, strict=True):
            if held_p.requires_grad:
                hook = partial(_alias_grad, base_p)
                held_p.register_post_accumulate_grad_hook(hook)  # type: ignore[no-untyped-call]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the model's gradients (the base copies alias them)."""
        for held_p, base_p in zip(self._held, self._base, strict=True):
            base_p.grad = None
            if held_p.grad is not None:
                if set_to_none:
                    held_p.grad = None
                else:
                    held_p.grad.zero_()

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Step the base weights with the model's gradients, then overshoot the model's weights."""
        loss = self._begin_step(closure)
        for held_p, base_p in zip(self._held, self._base, strict=True):
            base_p.grad = held_p.grad
            held_p.copy_(base_p)
        self.optimizer.step()
        gammas = [g["overshoot"] for g in self.param_groups for _ in g["params"]]
        for held_p, base_p, gamma in zip(self._held, self._base, gammas, strict=True):
            held_p.sub_(base_p).mul_(-gamma).add_(base_p)
        return loss

    def _shift(self, to_base: bool) -> None:
        for held_p, base_p in zip(self._held, self._base, strict=True):
            tmp = held_p.detach().clone()
            held_p.copy_(base_p)
            base_p.copy_(tmp)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["other_weights"] = list(self._base)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        other = state_dict.pop("other_weights")
        super().load_state_dict(state_dict)
        with torch.no_grad():
            for base_p, saved in zip(self._base, other, strict=True):
                base_p.copy_(saved)
