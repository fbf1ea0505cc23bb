"""Where the weights are: the Overshoot optimizer of a run, and its base weights held exactly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytorch_lightning as pl
import torch

from overshoot import OvershootOptimizer


def overshoot_optimizer(trainer: pl.Trainer) -> OvershootOptimizer | None:
    opts = trainer.optimizers
    return opts[0] if opts and isinstance(opts[0], OvershootOptimizer) else None


@contextmanager
def exactly_at_base(opt: OvershootOptimizer, module: torch.nn.Module) -> Iterator[None]:
    """Hold the base weights inside the block, then restore the held weights bit for bit.

    move_to_base ∘ move_to_overshoot is the identity only up to rounding; restoring a snapshot
    keeps training unperturbed by evaluation (one temporary copy of the parameters).
    """
    snapshot = [p.detach().clone() for p in module.parameters()]
    try:
        with opt.base_weights():
            yield
    finally:
        with torch.no_grad():
            for p, saved in zip(module.parameters(), snapshot, strict=True):
                p.copy_(saved)
