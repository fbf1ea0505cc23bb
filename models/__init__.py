"""What the trainer needs from a model: outputs, its loss, and its metrics."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class TaskModel(nn.Module):
    # Why seeds of this model cannot train as vectorized members (trainers/members/stacked.py),
    # e.g. a layer keeps batch statistics (BatchNorm); None: they can.
    vectorizes: ClassVar[str | None] = None
    # Where its members are known to run slower than separate runs on a CPU: the measurement.
    slower_as_members_on_cpu: ClassVar[str | None] = None
    # Whether its training forward draws random numbers (sampling, dropout): its members then
    # draw their noise jointly, so the ended ones keep computing (trainers/members/stacked.py).
    draws_noise: ClassVar[bool] = False

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra per-batch metrics (e.g. accuracy); none by default."""
        return {}

    # Vectorized members (trainers/members/stacked.py) run ``torch.vmap`` over the three methods
    # above, whose per-call work costs a small model more than its arithmetic. A model that is a
    # plain stack of layers can say so, and compute its members' losses and metrics on stacked
    # outputs (members × batch × ...) directly; None: vmap does it.

    def member_layers(self) -> nn.Sequential | None:
        """The forward as Flatten, Linear and elementwise layers in sequence, if it is that."""
        return None

    def member_losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Each member's ``loss`` (members,) from stacked ``out`` and ``y``."""
        return None

    def member_metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """Each member's ``metrics``, each (members,), as ``member_losses`` takes them."""
        return None
