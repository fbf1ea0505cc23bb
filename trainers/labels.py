"""Names a run is filed under: its optimizer label and its results folder, from its config."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from trainers.results import RunPath


def uses_overshoot(cfg: DictConfig) -> bool:
    """Whether ``optimizer.overshoot`` (γ) changes what this run computes.

    True in two-model mode and for every optimizer config whose factory reads γ (SGDO, AdamO,
    the wrapper around any optimizer), so a new Overshoot config needs no registration.
    """
    factory = OmegaConf.to_container(cfg.optimizer.factory, resolve=False)
    return bool(cfg.two_models) or "${optimizer.overshoot}" in str(factory)


def optimizer_label(cfg: DictConfig) -> str:
    """Folder name of the optimizer: its name, γ where Overshoot is used, the mode, and with
    ``lr_in_label`` its learning rate (a grid of rates files each apart)."""
    name = str(cfg.optimizer.name)
    rate = f"_lr{cfg.task[cfg.optimizer.family].lr:g}" if cfg.get("lr_in_label") else ""
    if not uses_overshoot(cfg):
        return f"{name}{rate}"
    mode = "_two_models" if cfg.two_models else ""
    return f"{name}{mode}_g{cfg.optimizer.overshoot:g}{rate}"


def run_folder(cfg: DictConfig) -> Path:
    """``<results_dir>/<experiment>/<task>/<optimizer label>/seed=<s>``."""
    path = RunPath(str(cfg.experiment_name), str(cfg.task.name), optimizer_label(cfg), cfg.seed)
    return path.folder(cfg.results_dir)
