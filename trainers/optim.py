"""Optimizer glue for configs: builders that Hydra's instantiate can call with the parameters."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from overshoot import Overshoot


def wrap_overshoot(
    params: Iterable[Any], inner: Callable[[Iterable[Any]], torch.optim.Optimizer], overshoot: float
) -> Overshoot:
    """Exact Overshoot around ``inner(params)``."""
    return Overshoot(inner(params), overshoot)
