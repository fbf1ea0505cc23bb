"""One run, top to bottom: config → datamodule + model + optimizer → Lightning trainer → results
folder. Re-running a command only does what is missing (see trainers/relaunch.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from trainers.callbacks import StepRecorder
from trainers.checkpoints import last_checkpoint
from trainers.checks import validate
from trainers.ddp import process_rank, rank_weight_diff
from trainers.labels import optimizer_label, run_folder
from trainers.logs import log_outcome, make_logger, silence_unactionable
from trainers.module import TrainModule
from trainers.optim import optimizer_factory
from trainers.relaunch import ended_summary, folder_lock, refuse_other_settings, resume_point
from trainers.results import RunResults
from trainers.trainer import make_trainer


class Interrupted(Exception):
    """The run was stopped (Ctrl-C, SIGTERM); its results folder says so and can be resumed."""


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one configuration; return where things went and the final losses.

    A run whose folder says it ended (finished or diverged) is not repeated unless ``force``; one
    that started and did not end resumes from its last checkpoint; one that another process is
    training is skipped. Under DDP every process runs this; rank 0 holds the lock and writes.
    With ``vectorize`` the seeds (and γ) of ``members`` train as one job (trainers/vectorized.py).
    """
    if cfg.vectorize:
        from trainers.vectorized import train_members  # which builds on this module

        return train_members(cfg)
    validate(cfg)
    directory = run_folder(cfg)
    refuse_other_settings(cfg, directory)
    make_folder(directory)
    silence_unactionable()
    if process_rank() != 0:  # a DDP process that rank 0 launched: it holds the lock
        return _train(cfg, directory)
    with folder_lock(directory) as held:
        if not held:
            skipped = "running in another process; skipped"
            return {"status": skipped, "steps": 0, "results": str(directory), "logs": "-"}
        return _train(cfg, directory)


def _train(cfg: DictConfig, directory: Path) -> dict[str, Any]:
    done = ended_summary(directory)
    if done is not None and not cfg.force:
        return done
    resume = None if cfg.force else resume_point(directory)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = make_datamodule(cfg, cfg.seed)
    steps, epochs = schedule(cfg, datamodule)
    results = RunResults(directory, write=process_rank() == 0)
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    recorder = StepRecorder(results, config_yaml, cfg.compute_base_model_loss)
    logger = make_logger(cfg, resume[1] if resume else None)
    trainer = make_trainer(cfg, directory, recorder, steps, epochs, logger)
    with trainer.init_module():  # in the run's dtype, so a float64 checkpoint loads exactly
        model = instantiate(cfg.task.model)
    module = TrainModule(model, optimizer_factory(cfg), **module_settings(cfg, steps))
    fit(trainer, module, datamodule, resume[0] if resume else None, directory)
    if cfg.checkpoint_every_n_epochs:  # the trained model, at base weights
        trainer.save_checkpoint(last_checkpoint(directory), weights_only=False)
    final = evaluate(trainer, module, datamodule)
    logs = trainer.logger.log_dir if trainer.logger is not None else None
    recorder.finish(trainer, final=final, logs=logs, **ranks(trainer))
    summary = {
        "status": recorder.status,
        "steps": trainer.global_step,
        "results": str(directory),
        "logs": logs,
        **final,
    }
    labels = {"task": cfg.task.name, "optimizer": optimizer_label(cfg), "seed": cfg.seed}
    log_outcome(trainer.logger, trainer.global_step, labels, summary)
    return summary


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


def make_folder(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"cannot write results to {directory} ({e.strerror}); set results_dir=DIR"
        ) from None


def fit(
    trainer: pl.Trainer,
    module: TrainModule,
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
    trainer: pl.Trainer, module: TrainModule, datamodule: pl.LightningDataModule
) -> dict[str, float]:
    """The last validation and the test metrics, both at the deployed weights."""
    last_val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    return {**last_val, **{k: float(v) for k, v in test.items()}}


def ranks(trainer: pl.Trainer) -> dict[str, Any]:
    """Under DDP: the world size and how far the ranks' deployed weights ended apart."""
    if trainer.world_size == 1:
        return {}
    return {"world_size": trainer.world_size, "rank_weight_diff": rank_weight_diff(trainer)}
