"""The fused paths' elementwise kernels, compiled once per process with ``torch.compile``.

torch's fused kernels cannot express AdamO's update in one pass (a gradient term divided by Adam's
denominator), nor the wrapper's shifts, and composing them with an extra pass costs ~60 % more
memory traffic. So each kernel is written as plain tensor
code over the parameter list and Inductor fuses it into one loop per tensor: C++ with OpenMP on the
CPU, Triton on CUDA. Every coefficient that a schedule or a change of γ moves is a 0-d CPU tensor,
never a Python float, so a new value never recompiles. Shapes are static: one compilation per
parameter structure (seconds, cached on disk by Inductor across processes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

_FUSED_DEVICES = ("cpu", "cuda")
_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class Kernel:
    """``fn`` compiled (fullgraph, static shapes) on its first call, not at import."""

    def __init__(self, fn: Callable[..., None]) -> None:
        self.fn = fn
        self._compiled: Callable[..., None] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if self._compiled is None:
            self._compiled = torch.compile(self.fn, fullgraph=True, dynamic=False)
        self._compiled(*args, **kwargs)


def scalars(dtype: torch.dtype, *values: float) -> list[Tensor]:
    """0-d CPU tensors that a compiled kernel reads without recompiling, in the precision the
    kernel computes ``dtype`` in (float64 for float64, else float32: a float64 scalar would make
    Inductor compute a float32 update in double, ~15 % slower)."""
    opmath = torch.float64 if dtype == torch.float64 else torch.float32
    return [torch.tensor(v, dtype=opmath) for v in values]


def check_fused(name: str, params: Sequence[Tensor]) -> None:
    """One clear error for what the fused kernels cannot step (as torch's fused optimizers);
    called for the parameters a step meets for the first time."""
    for p in params:
        if p.device.type not in _FUSED_DEVICES or p.dtype not in _FUSED_DTYPES:
            raise RuntimeError(
                f"{name}(fused=True) steps CPU and CUDA floating-point parameters, got a "
                f"{p.dtype} parameter on {p.device}; use foreach=True"
            )
        if p.grad is not None and p.grad.is_sparse:
            raise RuntimeError(f"{name}(fused=True) does not support sparse gradients")


def check_fused_flags(name: str, fused: bool | None, foreach: bool | None) -> None:
    if fused and foreach:
        raise RuntimeError(f"{name}: `fused` and `foreach` cannot be True together")
