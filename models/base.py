"""What the trainer needs from a model: outputs, its loss, and its metrics."""

from __future__ import annotations

import torch
from torch import nn


class TaskModel(nn.Module):
    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra per-batch metrics (e.g. accuracy); none by default."""
        return {}
