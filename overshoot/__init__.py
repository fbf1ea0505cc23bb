"""Overshoot optimizers: gradients taken γ× further along the last update (arXiv 2501.09556).

``SGDO`` and ``AdamO`` are the efficient forms (the memory of torch's SGD/AdamW), ``Overshoot``
wraps any torch optimizer exactly with one extra buffer, and ``TwoModelOvershoot`` is the
two-model reference. ``CriticalGradients`` is a peer from the literature (McRae et al. 2022)
built the same way around any optimizer. The Overshoot optimizers hold the overshot weights
during training; evaluate inside ``optimizer.base_weights()``.

Each optimizer's module loads when its name is first used (PEP 562), so a program that trains
with SGDO runs the code of ``sgdo.py`` and ``base.py`` only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from overshoot.base import OvershootOptimizer

if TYPE_CHECKING:
    from overshoot.adamo import AdamO, adamo
    from overshoot.critical_gradients import CriticalGradients
    from overshoot.sgdo import SGDO, sgdo
    from overshoot.two_models import TwoModelOvershoot
    from overshoot.wrapper import Overshoot

_MODULES = {
    "SGDO": "sgdo",
    "sgdo": "sgdo",
    "AdamO": "adamo",
    "adamo": "adamo",
    "CriticalGradients": "critical_gradients",
    "Overshoot": "wrapper",
    "TwoModelOvershoot": "two_models",
}

__all__ = [
    "SGDO",
    "AdamO",
    "CriticalGradients",
    "Overshoot",
    "OvershootOptimizer",
    "TwoModelOvershoot",
    "adamo",
    "sgdo",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'overshoot' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"overshoot.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULES])
