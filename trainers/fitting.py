"""The steps every training job takes, one run or the vectorized members of one configuration:
its datamodule, its length, the module's settings, the fit and the final evaluation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig


class Interrupted(Exception):
    """The run was stopped (Ctrl-C, SIGTERM); its results folder says so and can be resumed."""


def make_datamodule(cfg: DictConfig, seed: int) -> Any:
    """The task's datamodule at the family's batch size; ``seed`` orders the batches."""
    return instantiate(
        cfg.task.data,
        root=cfg.data.root,
        download=cfg.data.download,
        batch_size=cfg.task[cfg.optimizer.family].batch_size,
        seed=seed,
    )


def module_settings(cfg: DictConfig, steps: int) -> dict[str, Any]:
    """``TrainModule``'s settings from the run's config: schedule and two-model mode."""
    return {
        "total_steps": steps,
        "cosine": cfg.task.cosine,
        "cosine_extra": int(cfg.task.get("cosine_extra", 1)),
        "two_models": cfg.two_models,
        "overshoot": cfg.optimizer.overshoot,
    }


def schedule(cfg: DictConfig, datamodule: Any) -> tuple[int, int]:
    """(optimizer steps, epochs) of the run: ``max_steps``, else the task's epochs."""
    hp = cfg.task[cfg.optimizer.family]
    accumulate = int(cfg.task.get("accumulate", 1))
    batches = datamodule.batches_per_epoch()
    steps = cfg.max_steps or hp.get("epochs", cfg.task.epochs) * batches // accumulate
    return steps, math.ceil(steps * accumulate / batches)


def fit(
    trainer: pl.Trainer,
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    checkpoint: Path | None,
    directory: Path,
) -> None:
    """``trainer.fit``, from ``checkpoint`` when resuming; Ctrl-C and SIGTERM → Interrupted."""
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
    except SystemExit as stop:  # how Lightning ends a fit on Ctrl-C and on SIGTERM
        raise Interrupted(
            f"interrupted at step {trainer.global_step}; results kept in {directory}; "
            "run the same command again to resume"
        ) from stop


def evaluate(
    trainer: pl.Trainer, module: pl.LightningModule, datamodule: pl.LightningDataModule
) -> dict[str, float]:
    """The last validation and the test metrics, both at the deployed weights."""
    last_val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    return {**last_val, **{k: float(v) for k, v in test.items()}}
