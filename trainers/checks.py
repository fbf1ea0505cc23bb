"""Type checks on a composed config, cheap enough to run before anything heavy is imported."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

FAMILIES = ("sgd", "adam")  # every task config holds both hyperparameter sets


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_types(cfg: DictConfig) -> None:
    """Refuse hyperparameters of the wrong type: Hydra reads ``task.sgd.lr=abc`` as text."""
    for family in FAMILIES:  # both, whichever runs: a sweep checks each value once
        for key, value in cfg.task[family].items():
            if not _is_number(value):
                raise ValueError(f"task.{family}.{key}={value!r}: expected a number")
        batch = cfg.task[family].batch_size
        if not isinstance(batch, int) or batch <= 0:
            raise ValueError(f"task.{family}.batch_size={batch!r}: expected a positive integer")
    hparams = cfg.get("hparams", {}).get("name", "current")
    if hparams != "current" and cfg.task.get("hparams") != hparams:
        raise ValueError(
            f"task {cfg.task.name} has no {hparams} settings "
            f"(configs/task_hparams/{hparams}/{cfg.task.name}.yaml); use hparams=current"
        )
    gamma = cfg.optimizer.overshoot
    if not _is_number(gamma) or gamma < 0:
        raise ValueError(f"optimizer.overshoot={gamma!r}: expected a number >= 0")
    if cfg.max_steps is not None and (not isinstance(cfg.max_steps, int) or cfg.max_steps <= 0):
        raise ValueError(f"max_steps={cfg.max_steps!r}: expected a positive integer or null")
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ValueError(f"seed={cfg.seed!r}: expected a non-negative integer")
