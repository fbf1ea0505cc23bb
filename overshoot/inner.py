"""Base for optimizers that wrap an inner one and share its param groups (Overshoot, the two-model
reference, Critical Gradients)."""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer


class WrappingOptimizer(Optimizer):
    """Shares the param groups of an inner optimizer, so LR schedulers drive the inner one.

    ``defaults`` are the inner optimizer's with the wrapper's own hyperparameters added (also to
    the shared groups), as torch's schedulers read them: OneCycleLR and CyclicLR cycle momentum
    only where ``defaults`` names ``momentum`` or ``betas``. The state
    dict holds the wrapper's per-parameter state, the groups as the inner optimizer saves them
    (it may drop private keys, e.g. HeavyBall's class reference) and, under ``"inner"``, the
    inner optimizer's own state dict; loading restores the inner one and shares its groups.
    """

    def __init__(self, optimizer: Optimizer, defaults: dict[str, Any]) -> None:
        self.optimizer = optimizer
        super().__init__(optimizer.param_groups, {**optimizer.defaults, **defaults})
        self.param_groups = optimizer.param_groups

    def state_dict(self) -> dict[str, Any]:
        inner = self.optimizer.state_dict()
        state = super().state_dict()
        state["param_groups"] = inner["param_groups"]
        state["inner"] = inner
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        self.optimizer.load_state_dict(state_dict.pop("inner"))
        super().load_state_dict(state_dict)
        self.param_groups = self.optimizer.param_groups
