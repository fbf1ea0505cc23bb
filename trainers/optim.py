"""Optimizer glue for configs: builders that Hydra's instantiate can call with the parameters."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch

log = logging.getLogger(__name__)

Factory = Callable[[Iterable[Any]], torch.optim.Optimizer]


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
