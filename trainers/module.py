"""One LightningModule for every task and optimizer; two-model mode is a flag."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch

from models.base import TaskModel
from overshoot import TwoModelOvershoot
from trainers.base_weights import deployed_weights, moves_weights, run_optimizer
from trainers.checkpoints import HELD_KEY
from trainers.timing import StepClock

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
        self.step_clock = StepClock()  # started by the recorder, stopped after the update

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

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's step (forward, backward and update run inside it); the step's clock stops
        here, before the schedule and the end-of-batch hooks."""
        super().optimizer_step(*args, **kwargs)
        self.step_clock.stop()

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
