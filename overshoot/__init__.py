"""Overshoot optimizers: gradients taken γ× further along the last update (arXiv 2501.09556).

``SGDO`` and ``AdamO`` are the efficient forms (the memory of torch's SGD/AdamW), ``Overshoot``
wraps any torch optimizer exactly with one extra buffer, and ``TwoModelOvershoot`` is the
two-model reference. ``CriticalGradients`` is a peer from the literature (McRae et al. 2022)
built the same way around any optimizer. The Overshoot optimizers hold the overshot weights
during training; evaluate inside ``optimizer.base_weights()``.
"""

from overshoot.adamo import AdamO, adamo
from overshoot.base import OvershootOptimizer
from overshoot.critical_gradients import CriticalGradients
from overshoot.sgdo import SGDO, sgdo
from overshoot.two_models import TwoModelOvershoot
from overshoot.wrapper import Overshoot

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
