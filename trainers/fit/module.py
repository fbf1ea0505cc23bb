"""One LightningModule for every task and optimizer (two-model mode is a flag), and where the
weights are: the weights a user would deploy, held exactly for evaluation.

Some optimizers train at weights other than the ones to deploy: Overshoot holds θ′ (deploy θ),
schedule-free optimizers hold y (deploy x, their ``eval()`` mode), Lookahead holds the fast
weights (deploy the slow ones). Evaluation, the per-step loss at base weights and checkpoints
all go through ``deployed_weights``, so each sees what a user would deploy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import move_data_to_device

from models import TaskModel
from overshoot import OvershootOptimizer

HELD_KEY = "overshoot_held_state_dict"  # a checkpoint's training weights, beside the deployed

OptimizerFactory = Callable[[Iterable[Any]], torch.optim.Optimizer]


class TrainModule(pl.LightningModule):
    """Trains ``model`` (which knows its loss) with ``optimizer(params)``.

    ``two_models`` wraps the factory's optimizer as the base of the two-model reference with
    factor ``overshoot``. ``cosine`` adds the reference schedule: one cosine over the run
    (CosineAnnealingWarmRestarts with T_0 = total steps + ``cosine_extra``), stepped every batch.
    """

    def __init__(
        self,
        model: TaskModel,
        optimizer: OptimizerFactory,
        total_steps: int,
        cosine: bool = False,
        cosine_extra: int = 1,
        two_models: bool = False,
        overshoot: float = 5.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.total_steps = total_steps
        self.cosine = cosine
        self.cosine_extra = cosine_extra
        self.two_models = two_models
        self.overshoot = overshoot
        self.last_step: dict[str, torch.Tensor] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        """Lightning names the running hook in ``_current_fx_name`` around every hook call,
        ~47 times a step; nn.Module's parameter/buffer/submodule checks on each of those cost
        a small model (mlp_housing) about a quarter of its steps/s. A hook name is none of
        those, so plain attribute assignment is the same result."""
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def batch_loss(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = batch
        out = self.model(x)
        return self.model.loss(out, y), self.model.metrics(out, y)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, metrics = self.batch_loss(batch)
        # Read by StepRecorder, which logs in bulk: self.log per step costs more than the step.
        self.last_step = {"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}}
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        loss, metrics = self.batch_loss(batch)
        n = len(batch[0])
        self.log(f"{stage}/loss", loss, on_epoch=True, batch_size=n, prog_bar=stage == "val")
        for name, value in metrics.items():
            self.log(f"{stage}/{name}", value, on_epoch=True, batch_size=n)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def optimizer_params(self) -> Any:
        """What the optimizer is built on: the model's parameters (or param groups)."""
        return self.model.parameters()

    def configure_optimizers(self) -> Any:
        params = self.optimizer_params()
        if self.two_models:
            from overshoot import TwoModelOvershoot  # loaded only for the two-model reference

            opt: torch.optim.Optimizer = TwoModelOvershoot(
                params, self.optimizer_factory, self.overshoot
            )
        else:
            opt = self.optimizer_factory(params)
        if not self.cosine:
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            opt, T_0=self.total_steps + self.cosine_extra
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the deployable weights as ``state_dict`` and the held ones for resuming."""
        opt = run_optimizer(self.trainer)
        if moves_weights(opt):
            checkpoint[HELD_KEY] = checkpoint["state_dict"]
            with deployed_weights(opt, self):
                checkpoint["state_dict"] = {k: v.clone() for k, v in self.state_dict().items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming training (a trainer is attached) continues from the held weights."""
        if self._trainer is not None and HELD_KEY in checkpoint:
            checkpoint["state_dict"] = checkpoint[HELD_KEY]


# The deployed weights.
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
