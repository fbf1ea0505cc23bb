"""The Lightning trainer of one run: trainer config, callbacks from their config group, the run's
precision and logger."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import Logger

from trainers.checkpoints import ResultsCheckpointIO
from trainers.checks import resolved_precision

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"  # set by lightning_fabric on import


def probe_cuda_once() -> None:
    """Keep torch's per-step accelerator check cheap where no GPU exists.

    Lightning makes torch ask NVML whether CUDA is available (fork-safe), and torch's Adam,
    AdamW, NAdam and RMSprop ask at every step; without a GPU (a CUDA build of torch on a CPU
    machine) each answer loads the NVML library anew, 0.1–0.3 ms a step, a third of a small
    MLP's AdamW step and nothing of SGD's. Where NVML finds no GPU, the runtime's own count
    (cheap, and fork-safe with no device) answers instead.
    """
    if os.environ.get(NVML_CHECK) == "1" and not torch.cuda.is_available():
        del os.environ[NVML_CHECK]


def make_trainer(
    cfg: DictConfig,
    directory: Path,
    recorder: pl.Callback,
    steps: int,
    epochs: int,
    logger: Logger | bool,
) -> pl.Trainer:
    """``recorder`` writes the results folder ``directory`` (Lightning's root folder, where the
    checkpoint callback writes); ``logger`` is the run's (see ``trainers.logs.make_logger``)."""
    probe_cuda_once()
    trainer_cfg: dict[str, Any] = dict(OmegaConf.to_container(cfg.trainer, resolve=True))  # type: ignore[arg-type]
    return pl.Trainer(
        **trainer_cfg,
        precision=resolved_precision(str(cfg.precision), str(trainer_cfg["accelerator"])),  # type: ignore[arg-type]
        max_steps=steps,
        max_epochs=epochs,
        accumulate_grad_batches=int(cfg.task.get("accumulate", 1)),
        logger=logger,
        callbacks=[*make_callbacks(cfg), recorder],
        default_root_dir=str(directory),
        enable_checkpointing=False,  # the checkpoint callback of configs/callbacks writes them
        use_distributed_sampler=False,  # the datamodule's sampler gives each rank its slice
        num_sanity_val_steps=0,
        enable_model_summary=False,
        plugins=[ResultsCheckpointIO()],
    )


def make_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """Every callback of ``cfg.callbacks`` (null entries switched off); a progress bar only
    where the trainer shows one."""
    made = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not cfg.trainer.enable_progress_bar:
        made = [c for c in made if not isinstance(c, ProgressBar)]
    return made
