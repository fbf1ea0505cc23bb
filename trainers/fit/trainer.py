"""The Lightning trainer of one run: its config, callbacks from their config group, precision,
logger (TensorBoard or CSV, in a version folder no parallel job takes), checkpoints, and what
changes under DDP.

Checkpoints are what a run resumes from exactly and a user deploys from directly: ``state_dict``
holds the base weights θ (what ``torch.load(...)["state_dict"]`` users expect); the held
weights θ′ and the random-number states ride along under their own keys, so a resumed run
continues bit for bit where the interrupted one stopped."""

from __future__ import annotations

import io
import logging
import math
import os
import random
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from lightning_fabric.plugins import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from pytorch_lightning.utilities.warnings import PossibleUserWarning

from trainers.cli.checks import resolved_precision
from trainers.fit.module import deployed_weights, run_optimizer
from trainers.results import write_atomic

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
    checkpoint callback writes); ``logger`` is the run's (``make_logger``)."""
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


# The run's logging.
# Printed on every run, and nothing a user of the harness can act on: Lightning's own use of a
# torch class that torch deprecates; its advice to add DataLoader workers, which would only slow
# batches that are slices of tensors already in memory (on the training device); and its note
# that an epoch is shorter than log_every_n_steps, which StepRecorder's blocks span anyway.
UNACTIONABLE_WARNINGS = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    (r"The '\w+' does not have many workers", PossibleUserWarning),
    (r"The number of training batches \(\d+\) is smaller than the logging", PossibleUserWarning),
)


class _Unactionable(logging.Filter):
    """Drops what every run would print and no one can act on: Lightning's advertisement for
    its hosted logger, and torch.compile's note that a CPU machine has no CUDA runtime."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "litlogger" not in message and "No CUDA runtime is found" not in message


UNACTIONABLE_LOGS = _Unactionable()


def silence_unactionable() -> None:
    for message, category in UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message, category)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(UNACTIONABLE_LOGS)
    logging.getLogger("torch.utils.cpp_extension").addFilter(UNACTIONABLE_LOGS)


def make_logger(cfg: DictConfig, version: int | None) -> Logger | bool:
    """The configured logger (False: none); ``version`` continues a resumed run's folder."""
    if not cfg.get("logger"):
        return False
    where = cfg.logger.get("save_dir"), cfg.logger.get("name")
    if version is None and process_rank() == 0 and None not in where:
        version = claim_version(Path(str(where[0])) / str(where[1]))
    logger: Logger = instantiate(cfg.logger, version=version)
    return logger


def claim_version(folder: Path) -> int:
    """Create the next free ``version_N`` under ``folder`` and return N.

    The loggers pick N by listing the folder, so parallel jobs of a sweep that share
    experiment_name and job_name could pick the same one; an exclusive mkdir cannot.
    """
    folder.mkdir(parents=True, exist_ok=True)
    taken = [p.name.removeprefix("version_") for p in folder.glob("version_*")]
    n = max((int(t) for t in taken if t.isdigit()), default=-1) + 1
    while True:
        try:
            (folder / f"version_{n}").mkdir()
            return n
        except FileExistsError:
            n += 1


def log_outcome(
    logger: Logger | None, step: int, hparams: dict[str, Any], summary: dict[str, Any]
) -> None:
    """Record the run's labels with its final metrics (TensorBoard's HParams tab pairs them)."""
    if logger is None:
        return
    metrics = {k: v for k, v in summary.items() if isinstance(v, float) and math.isfinite(v)}
    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(hparams, metrics)
    else:
        logger.log_hyperparams(hparams)
        logger.log_metrics(metrics, step=step)
    logger.save()


# Under DDP.
def process_rank() -> int:
    """This process's DDP rank, known before the trainer starts (Lightning sets it from env)."""
    return int(getattr(rank_zero_only, "rank", 0))


def rank_weight_diff(trainer: pl.Trainer) -> float:
    """Largest difference between any rank's deployable weights and rank 0's (0 under DDP)."""
    module = trainer.lightning_module
    with torch.no_grad(), deployed_weights(run_optimizer(trainer), module):
        flat = torch.cat([p.detach().flatten() for p in module.parameters()])
    # After trainer.test the model is back on the CPU; NCCL gathers only GPU tensors.
    gathered = trainer.strategy.all_gather(flat.to(trainer.strategy.root_device))
    return float((gathered - gathered[0]).abs().max())


# Checkpoints.
RNG_KEY = "rng_states"
EPOCH_START_KEY = "saved_at_epoch_start"


def rng_states() -> dict[str, Any]:
    """Every generator a run may draw from, as tensors and numbers (``weights_only``-loadable)."""
    state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    kind, keys, pos, has_gauss, gauss = state
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])


class ResultsCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint files, written as every file of a results folder is
    (``write_atomic``: temporary file, rename, the user's umask)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(Path(path), buffer.getvalue())


def last_checkpoint(directory: Path) -> Path:
    return directory / "checkpoints" / "last.ckpt"


class EpochStartCheckpoint(pl.Callback):
    """Writes the run folder's ``checkpoints/last.ckpt`` (the trainer's ``default_root_dir``;
    overwritten: one checkpoint per run) at the start of every n-th epoch; never at 0.

    At an epoch's start the previous epoch, its validation included, is complete and nothing of
    the new one has run: Lightning resumes such a checkpoint at exactly that point, the sampler
    replays the epoch's order from (seed, epoch), and the random-number states saved here are
    restored here, so a resumed run draws what the uninterrupted one draws.
    """

    def __init__(self, every_n_epochs: int = 1) -> None:
        self.every_n_epochs = every_n_epochs
        self._rng: dict[str, Any] | None = None
        self._at_epoch_start = False  # marks the checkpoints this callback writes

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._rng is not None:  # the first epoch after resuming: this is the saved point
            set_rng_states(self._rng)
            self._rng = None
            return
        epoch, every = trainer.current_epoch, self.every_n_epochs
        if every and epoch > 0 and epoch % every == 0:
            self._at_epoch_start = True
            path = last_checkpoint(Path(trainer.default_root_dir))
            trainer.save_checkpoint(path, weights_only=False)
            self._at_epoch_start = False

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RNG_KEY] = rng_states()
        checkpoint[EPOCH_START_KEY] = self._at_epoch_start

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._rng = checkpoint.get(RNG_KEY)
        if checkpoint.get(EPOCH_START_KEY):
            # Lightning restores the epoch counters of an epoch-start checkpoint correctly but
            # keeps the finished epoch's batch counter, which would end the new epoch at once.
            batches = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]
            batches["current"] = dict.fromkeys(batches["current"], 0)
            batches["is_last_batch"] = False
