"""The run's logging: its logger (TensorBoard or CSV) in a version folder no parallel job takes,
the final hyperparameters-and-metrics record, and silence for what no user can act on."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.utilities.warnings import PossibleUserWarning

from trainers.ddp import process_rank

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
