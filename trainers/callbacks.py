"""Callbacks: evaluation at base weights, per-step records (incl. loss at base weights), results."""

from __future__ import annotations

import math
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar

from trainers.base_weights import (
    deployed_weights,
    moves_weights,
    run_optimizer,
    state_to_device,
)
from trainers.module import TrainModule
from trainers.results import STEP_FIELDS, RunResults


class BaseWeightsEvaluation(pl.Callback):
    """Validation and test see the weights a user would deploy (see ``deployed_weights``)."""

    def __init__(self) -> None:
        self._ctx: Any = None

    def _to_base(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        opt = run_optimizer(trainer)
        if moves_weights(opt):
            self._ctx = deployed_weights(opt, module)
            self._ctx.__enter__()

    def _back(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            ctx.__exit__(None, None, None)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._to_base(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._back(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        opt = run_optimizer(trainer)
        if opt is not None:
            state_to_device(opt, pl_module.device)
        self._to_base(trainer, pl_module)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._back(trainer, pl_module)


class LossProgressBar(RichProgressBar):
    """Rich progress bar that also shows the last training loss (logged in bulk elsewhere)."""

    def get_metrics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        if isinstance(pl_module, TrainModule) and "loss" in pl_module.last_step:
            metrics["loss"] = f"{pl_module.last_step['loss'].item():.4g}"
        return metrics


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class StepRecorder(pl.Callback):
    """Records every step (and every evaluation) into the run's results folder.

    The loss at base weights is an extra no-grad forward on the same batch after the update, with
    the RNG and the model's buffers (e.g. BatchNorm statistics) restored, so it leaves training
    untouched. Step values stay on the device and are written (CSV every step, TensorBoard at the
    last step of each block) every ``trainer.log_every_n_steps`` steps: one host sync per block,
    not per step. A non-finite loss stops the run with status ``diverged``.
    """

    def __init__(self, results: RunResults, config_yaml: str, base_loss: bool = True) -> None:
        self.results = results
        self.config_yaml = config_yaml
        self.base_loss = base_loss
        self.start = 0.0
        self.lr = 0.0
        self.status = "finished"
        self.diverged_at: int | None = None
        self.pending: list[tuple[dict[str, Any], dict[str, torch.Tensor]]] = []
        self.recorded_step = 0
        self.resumed_wall_time: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"wall_time": time.perf_counter() - self.start}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.resumed_wall_time = float(state_dict["wall_time"])

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.resumed_wall_time is not None:
            return  # resuming: on_train_start, once the checkpoint's step is restored
        logs = trainer.logger.log_dir if trainer.logger is not None else None
        self.start = time.perf_counter()
        self.results.start(
            self.config_yaml,
            {
                "torch": torch.__version__,
                "lightning": pl.__version__,
                "python": platform.python_version(),
                "git_commit": _git_commit(),
                "device": str(pl_module.device),
                "precision": str(trainer.precision),
                "logs": logs,
            },
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.resumed_wall_time is not None:
            self.start = time.perf_counter() - self.resumed_wall_time
            self.recorded_step = trainer.global_step
            self.results.resume(trainer.global_step)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.flush(trainer)
        self.results.sync()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Ctrl-C, SIGTERM or an error: keep what was recorded and say how the run stopped."""
        if not self.results.meta:
            return  # failed before the run started: nothing to keep
        self.flush(trainer, reduce=False)
        stopped = isinstance(exception, KeyboardInterrupt | SystemExit)
        self.results.close(
            "interrupted" if stopped else "failed",
            stopped_at_step=trainer.global_step,
            error=None if stopped else f"{type(exception).__name__}: {exception}",
        )

    def _loss_at_base(
        self, module: TrainModule, opt: torch.optim.Optimizer, batch: Any
    ) -> torch.Tensor:
        buffers = [b.detach().clone() for b in module.model.buffers()]
        with torch.random.fork_rng(devices=[]), torch.no_grad(), deployed_weights(opt, module):
            loss, _ = module.batch_loss(batch)
        with torch.no_grad():
            for b, saved in zip(module.model.buffers(), buffers, strict=True):
                b.copy_(saved)
        return loss

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.lr = float(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        assert isinstance(pl_module, TrainModule)
        if trainer.global_step == self.recorded_step:
            return  # accumulating gradients: one row per optimizer step (its last micro-batch)
        self.recorded_step = trainer.global_step
        values = dict(pl_module.last_step)
        opt = run_optimizer(trainer)
        values["loss_base"] = values["loss"]
        if self.base_loss and opt is not None and moves_weights(opt):
            values["loss_base"] = self._loss_at_base(pl_module, opt, batch)
        info = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "lr": self.lr,
            "wall_time": round(time.perf_counter() - self.start, 4),
        }
        self.pending.append((info, values))
        if len(self.pending) >= trainer.log_every_n_steps:  # type: ignore[attr-defined]
            self.flush(trainer)

    def flush(self, trainer: pl.Trainer, reduce: bool = True) -> None:
        """Write the pending steps; stop the run at the first non-finite loss.

        Every rank flushes at the same steps (``reduce`` is a collective), except when a rank
        fails alone (``reduce=False``), which keeps its own values.
        """
        if not self.pending:
            return
        names = list(self.pending[0][1])
        rows = torch.stack([torch.stack([v[n].double() for n in names]) for _, v in self.pending])
        if reduce:  # DDP: each rank saw its slice of the batch; record the global batch's mean
            rows = trainer.strategy.reduce(rows, reduce_op="mean")
        for (info, _), numbers in zip(self.pending, rows.tolist(), strict=True):
            row = {**info, **dict(zip(names, numbers, strict=True))}
            self.results.append("steps.csv", row, STEP_FIELDS)
            if self.diverged_at is None and not all(map(math.isfinite, numbers)):
                self.status, self.diverged_at = "diverged", info["step"]
                trainer.should_stop = True
        self.pending.clear()
        if trainer.logger is not None:
            tags = {f"train/{n}": x for n, x in zip(names, numbers, strict=True)}
            trainer.logger.log_metrics({**tags, "lr": row["lr"]}, step=row["step"])

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush(trainer)

    def _record_eval(self, trainer: pl.Trainer, stage: str) -> None:
        metrics = trainer.callback_metrics
        if f"{stage}/loss" in metrics:
            row = {"stage": stage, "epoch": trainer.current_epoch, "step": trainer.global_step}
            for name in ("loss", "accuracy"):
                if f"{stage}/{name}" in metrics:
                    row[name] = float(metrics[f"{stage}/{name}"])
            self.results.append("evals.csv", row, ["stage", "epoch", "step", "loss", "accuracy"])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record_eval(trainer, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record_eval(trainer, "test")

    def finish(self, trainer: pl.Trainer, **meta: Any) -> None:
        """Close the step files and record how the run ended (``meta``: extra fields)."""
        wall = time.perf_counter() - self.start
        self.results.finish(
            self.status,
            **meta,
            diverged_at_step=self.diverged_at,
            steps=trainer.global_step,
            wall_time_s=round(wall, 3),
            steps_per_s=round(trainer.global_step / wall, 2) if wall > 0 else None,
        )
