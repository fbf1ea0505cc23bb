"""Optimizer glue for configs: builders that Hydra's instantiate can call with the parameters."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

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
