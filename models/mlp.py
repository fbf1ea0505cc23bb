"""Fully connected ReLU network for regression (MSE) or classification (cross-entropy)."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from models import TaskModel


class MLP(TaskModel):
    def __init__(self, sizes: list[int], task: str = "regression") -> None:
        super().__init__()
        if task not in ("regression", "classification"):
            raise ValueError(f"unknown task {task!r}; valid: regression, classification")
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "regression":
            return nn.functional.mse_loss(out, y)
        return nn.functional.cross_entropy(out, y)

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.task == "regression":
            return {}
        return {"accuracy": (out.argmax(dim=1) == y).float().mean()}

    def member_layers(self) -> nn.Sequential:
        return self.net

    def member_losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "regression":
            return nn.functional.mse_loss(out, y, reduction="none").flatten(1).mean(dim=1)
        per_row = nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none")
        return per_row.view(out.shape[:2]).mean(dim=1)

    def member_metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.task == "regression":
            return {}
        return {"accuracy": (out.argmax(dim=-1) == y).float().mean(dim=1)}
