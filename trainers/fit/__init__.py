"""Fitting one job with Lightning: the steps every job takes (its datamodule, length, module
settings, the fit and the final evaluation) and the optimizer a config builds. ``module.py`` is
the LightningModule and the deployed weights, ``trainer.py`` the trainer with its logger,
checkpoints and DDP, ``callbacks.py`` what a run records and times. Lightning is imported by
those, not here: the command line's checks build optimizers without it."""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

if TYPE_CHECKING:
    import pytorch_lightning as pl


class Interrupted(Exception):
    """The run was stopped (Ctrl-C, SIGTERM); its results folder says so and can be resumed."""


def task_data(cfg: DictConfig, seed: int) -> Any:
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


# The optimizer a config builds.
log = logging.getLogger(__name__)

Factory = Callable[[Iterable[Any]], torch.optim.Optimizer]

# Optimizers whose ``fused`` / ``foreach`` switches choose how a step is computed, not what.
_PATH_MODULES = ("torch.optim.", "overshoot.")


def fastest(factory: Any, kernels: str) -> Any:
    """``factory`` (and the factories inside it, e.g. a wrapper's inner one) on ``kernels``.

    ``fused``: torch's fused kernels (SGD, Adam, AdamW) and Overshoot's (SGDO, AdamO, the
    wrapper) where they exist, foreach elsewhere, so both sides of a comparison run at their
    best; ``foreach``: the multi-tensor kernels everywhere; ``single``: the per-tensor loop
    (torch's CPU default before fused kernels). Only torch's optimizers and ours are switched;
    a config that sets ``fused`` or ``foreach`` itself keeps its choice.
    """
    if not isinstance(factory, functools.partial):
        return factory
    keywords = {k: fastest(v, kernels) for k, v in factory.keywords.items()}
    fn = factory.func
    if str(getattr(fn, "__module__", "")).startswith(_PATH_MODULES) and not (
        keywords.keys() & {"fused", "foreach"}
    ):
        names = inspect.signature(fn).parameters
        if kernels == "fused" and "fused" in names:
            keywords["fused"] = True
        elif "foreach" in names:
            keywords["foreach"] = kernels != "single"
    return functools.partial(fn, *factory.args, **keywords)


def resolved_kernels(opt: torch.optim.Optimizer) -> str:
    """The kernels an optimizer's update runs on: ``fused``, ``foreach``, ``single``, or ``own``
    for a library's own (HeavyBall, pytorch-optimizer's wrappers). With ``kernels=fused`` an
    optimizer without fused kernels (NAdam, RMSprop) resolves to ``foreach``."""
    group = opt.param_groups[0]
    if group.get("fused"):
        return "fused"
    if "foreach" not in group:
        return "own"
    foreach = group["foreach"]
    if foreach is None:  # torch's default: foreach where every parameter is on a GPU
        foreach = all(p.device.type == "cuda" for g in opt.param_groups for p in g["params"])
    return "foreach" if foreach else "single"


def wrapped(
    params: Iterable[Any], inner: Factory, wrapper: Callable[[torch.optim.Optimizer], Any]
) -> torch.optim.Optimizer:
    """``wrapper(inner(params))``: Overshoot, Critical Gradients, Lookahead around any one."""
    opt = wrapper(inner(params))
    assert isinstance(opt, torch.optim.Optimizer)
    return opt


def heavyball(
    params: Iterable[Any], name: str, compile_mode: str | None, **hyperparameters: Any
) -> torch.optim.Optimizer:
    """HeavyBall's optimizer ``name``; ``compile_mode`` None runs its kernels uncompiled.

    HeavyBall compiles its kernels with torch.compile on the first steps: that pause is announced
    once per process instead of looking like a hang.
    """
    import heavyball as hb
    import heavyball.utils

    heavyball.utils.compile_mode = compile_mode
    if compile_mode is not None:
        _announce_compile(name, compile_mode)
    opt = getattr(hb, name)(params, **hyperparameters)
    assert isinstance(opt, torch.optim.Optimizer)
    return opt


@functools.cache
def _announce_compile(name: str, mode: str) -> None:
    log.warning(
        "HeavyBall %s compiles its kernels during the first steps (torch.compile mode %s; "
        "tens of seconds on CPU); optimizer.factory.compile_mode=null runs them uncompiled",
        name,
        mode,
    )


def optimizer_factory(cfg: DictConfig) -> Any:
    """``factory(params)`` builds the run's optimizer on the run's ``kernels``.

    Lists and dicts arrive as Python ones (``_convert_``), so the optimizer state a checkpoint
    stores (e.g. Adam's betas) loads with ``torch.load(weights_only=True)`` when resuming.
    """
    return fastest(instantiate(cfg.optimizer.factory, _convert_="all"), str(cfg.kernels))
