"""Small deterministic models and loops shared by the optimizer tests."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

# torch's three ways to compute a step (for-loop, foreach, fused): ours is compared on the same one
PATHS = [{"foreach": False}, {"foreach": True}, {"fused": True}]
PATH_IDS = ["loop", "foreach", "fused"]


def make_mlp(dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2)
    ).to(dtype)


def make_data(
    dtype: torch.dtype = torch.float32, n: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.sin(x[:, :2] * 2) + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def loss_fn(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int, batch: int = 32
) -> torch.Tensor:
    i = (step * batch) % x.shape[0]
    return nn.functional.mse_loss(model(x[i : i + batch]), y[i : i + batch])


def train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    steps: int,
    data: tuple[torch.Tensor, torch.Tensor],
    sched: torch.optim.lr_scheduler.LRScheduler | None = None,
    start: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> list[float]:
    losses = []
    for t in range(start, start + steps):
        opt.zero_grad()
        loss = loss_fn(model, *data, t)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(t)
    return losses


def params_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def max_rel_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(((x - y).abs().max() / y.abs().max()).item() for x, y in zip(a, b, strict=True))


def copies(model: nn.Module, n: int) -> list[nn.Module]:
    return [copy.deepcopy(model) for _ in range(n)]
