"""Where the weights are: the weights a user would deploy, held exactly for evaluation.

Some optimizers train at weights other than the ones to deploy: Overshoot holds θ′ (deploy θ),
schedule-free optimizers hold y (deploy x, their ``eval()`` mode), Lookahead holds the fast
weights (deploy the slow ones). Evaluation, the per-step loss at base weights and checkpoints
all go through ``deployed_weights``, so each sees what a user would deploy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import move_data_to_device

from overshoot import OvershootOptimizer


def run_optimizer(trainer: pl.Trainer) -> torch.optim.Optimizer | None:
    opts = trainer.optimizers
    return opts[0] if opts else None


@contextmanager
def _between(enter: Callable[[], Any], leave: Callable[[], Any]) -> Iterator[None]:
    enter()
    try:
        yield
    finally:
        leave()


def deploy_switch(opt: torch.optim.Optimizer | None) -> AbstractContextManager[None] | None:
    """The optimizer's own switch to its deployable weights, or None if it holds them already."""
    if isinstance(opt, OvershootOptimizer):  # at γ = 0 the held weights are the base ones
        return opt.base_weights() if opt.shifted and not opt.at_base else None
    peer: Any = opt  # the switches below are duck-typed, not part of torch's Optimizer
    if callable(getattr(peer, "backup_and_load_cache", None)):  # pytorch_optimizer's Lookahead
        return _between(peer.backup_and_load_cache, peer.clear_and_load_backup)
    if callable(getattr(peer, "eval", None)) and callable(getattr(peer, "train", None)):
        return _between(peer.eval, peer.train)  # HeavyBall SF*, schedulefree: train/eval modes
    return None


def state_to_device(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """Move the optimizer's state to ``device``, leaving step counters where torch keeps them.

    ``trainer.fit`` ends by moving the model and the optimizer's state to the CPU; ``trainer.test``
    moves the model back to the GPU but not the optimizer, whose state the switch to the
    deployable weights reads alongside the parameters.
    """
    for state in opt.state.values():
        for key, value in state.items():
            if key != "step":
                state[key] = move_data_to_device(value, device)


def moves_weights(opt: torch.optim.Optimizer | None) -> bool:
    """Whether training holds weights other than the deployable ones."""
    return deploy_switch(opt) is not None


@contextmanager
def deployed_weights(opt: torch.optim.Optimizer | None, module: torch.nn.Module) -> Iterator[None]:
    """Hold the deployable weights inside the block, then restore the training ones bit for bit.

    A switch and its inverse are the identity only up to rounding (θ′ − γu + γu, a lerp and its
    inverse); restoring a copy keeps training unperturbed by evaluation (one temporary copy of
    the parameters). Overshoot optimizers restore their own copy and skip the shift back.
    """
    switch = deploy_switch(opt)
    if isinstance(opt, OvershootOptimizer) and switch is not None:
        with opt.base_weights(exact=True):
            yield
        return
    if switch is None:
        yield
        return
    params: list[torch.Tensor] = list(module.parameters())
    snapshot = [p.detach().clone() for p in params]
    try:
        with switch:
            yield
    finally:
        with torch.no_grad():
            torch._foreach_copy_(params, snapshot)
