"""What every Overshoot optimizer shares: the base-weights API, the step preamble, bucketing,
validation, and the fused paths' compiled kernels.

During training the model holds the overshot weights θ′ (where gradients are taken). Anything that
reports quality must see the base weights θ. Subclasses implement `_shift(to_base)`, which moves
the held weights in place between the two; this class keeps track of where they are, refuses
steps at base weights and stores the position in the state dict.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.optim import Optimizer

_AT_BASE_KEY = "overshoot_at_base"
_PATH_KEYS = ("foreach", "fused")
K = TypeVar("K", bound=Hashable)


def buckets(keys: Iterable[K]) -> dict[K, list[int]]:
    """The indices of equal keys, in first-seen order: a multi-tensor kernel takes one bucket
    of tensors that share a device, a dtype and the step's scalars. (torch's
    ``_group_tensors_by_device_and_dtype`` groups by device and dtype alone; these steps also
    split on per-tensor scalars such as the last step's η and γ.)"""
    out: dict[K, list[int]] = {}
    for i, key in enumerate(keys):
        out.setdefault(key, []).append(i)
    return out


def use_foreach(foreach: bool | None, params: list[torch.Tensor]) -> bool:
    """Like torch: foreach by default where its fused kernels exist (not on CPU)."""
    if foreach is not None:
        return foreach
    return bool(params) and all(p.device.type != "cpu" for p in params)


class OvershootOptimizer(Optimizer):
    """A torch optimizer whose parameters hold the overshot weights θ′ between steps."""

    _at_base: bool = False
    _exact_shift: bool = False  # True where shifting there and back is exact (no copy needed)

    @property
    def compiles(self) -> bool:
        """Whether a step may run a kernel that ``torch.compile`` builds (on the CPU, Inductor
        needs a C++ compiler for it)."""
        return False

    @property
    def shifted(self) -> bool:
        """Whether the held weights θ′ differ from θ: some parameter's γ in force (the one of its
        last step, or its group's before any) is not 0. At γ = 0 (and during AdamO's delay)
        θ′ = θ, so evaluating at the base weights needs no shift and no copy."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                gamma = state.get("overshoot_prev", group["overshoot"]) if state else None
                if (group["overshoot"] if gamma is None else gamma) != 0:
                    return True
        return False

    @property
    def at_base(self) -> bool:
        """True while the parameters hold the base weights θ."""
        return self._at_base

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, its hyperparameters checked once here (``__init__`` adds each group
        through this), not at every step."""
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError naming a hyperparameter of ``group`` (defaults filled) out of range."""

    @abstractmethod
    def _shift(self, to_base: bool) -> None:
        """Move the parameters in place from θ′ to θ (`to_base`) or back.

        SGDO, AdamO and the wrapper compute the offset θ − θ′ from their state and add it with
        ``sign = 1.0 if to_base else -1.0``; the two-model reference swaps its two copies.
        """

    @torch.no_grad()
    def move_to_base(self) -> None:
        """Make the parameters hold the base weights θ (for evaluation and checkpoints)."""
        if self._at_base:
            raise RuntimeError(
                "move_to_base() called while already at base weights; "
                "call move_to_overshoot() first"
            )
        self._shift(to_base=True)
        self._at_base = True

    @torch.no_grad()
    def move_to_overshoot(self) -> None:
        """Make the parameters hold the overshot weights θ′ again (before training resumes)."""
        if not self._at_base:
            raise RuntimeError(
                "move_to_overshoot() called while already at overshoot weights; "
                "call move_to_base() first"
            )
        self._shift(to_base=False)
        self._at_base = False

    @contextmanager
    def base_weights(self, exact: bool = False) -> Iterator[None]:
        """Hold the base weights inside the block; re-entrant, so nested uses are safe.

        Leaving the block shifts back to θ′, which rounds (θ′ + δ − δ). ``exact`` restores θ′ bit
        for bit from a copy taken on entry instead (one temporary copy of the parameters, and no
        shift back), so evaluating between steps leaves training untouched.
        """
        if self._at_base:
            yield
            return
        copy = exact and not self._exact_shift
        params = [p for group in self.param_groups for p in group["params"]] if copy else []
        held = [p.detach().clone() for p in params]
        self.move_to_base()
        try:
            yield
        finally:
            if copy:
                with torch.no_grad():
                    torch._foreach_copy_(params, held)
                self._at_base = False
            else:
                self.move_to_overshoot()

    def _begin_step(self, closure: Callable[[], float] | None) -> float | None:
        """Every step's start: refuse one at the base weights (its gradients would be taken at
        θ, not θ′), then the closure's loss, computed with gradients on."""
        if self._at_base:
            raise RuntimeError(
                f"{type(self).__name__}.step() called while the parameters hold the base "
                "weights; call move_to_overshoot() (or leave the base_weights() block) first"
            )
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state[_AT_BASE_KEY] = self._at_base
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the state; each group keeps this instance's ``foreach`` / ``fused`` choice.

        How a step is computed is not state: a state saved by the fused path continues on the
        foreach one and back (torch would take the saved flags).
        """
        state_dict = dict(state_dict)
        at_base = bool(state_dict.pop(_AT_BASE_KEY, False))
        paths = [{k: g[k] for k in _PATH_KEYS if k in g} for g in self.param_groups]
        super().load_state_dict(state_dict)
        for group, path in zip(self.param_groups, paths, strict=True):
            group.update(path)
        self._at_base = at_base


def check_overshoot_hparams(
    overshoot: float, *, lr: float = 0.0, momentum: float | None = None
) -> None:
    """Reject hyperparameters that would make the update undefined or meaningless."""
    if not lr >= 0.0:
        raise ValueError(f"Invalid learning rate: {lr} (must be >= 0)")
    if not overshoot >= 0.0:
        raise ValueError(f"Invalid overshoot factor: {overshoot} (must be >= 0)")
    if momentum is not None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Invalid momentum: {momentum} (must be in [0, 1))")
        if momentum == 0.0 and overshoot > 0.0:
            raise ValueError(
                f"Invalid momentum: {momentum} with overshoot {overshoot}: overshoot needs "
                "momentum > 0 (the update divides by it); use overshoot=0 for plain SGD"
            )


# The fused paths' elementwise kernels, compiled once per process with ``torch.compile``.
#
# torch's fused kernels cannot express AdamO's update in one pass (a gradient term divided by Adam's
# denominator), nor the wrapper's shifts, and composing them with an extra pass costs ~60 % more
# memory traffic. So each kernel is written as plain tensor code over the parameter list and
# Inductor fuses it into one loop per tensor: C++ with OpenMP on the CPU, Triton on CUDA. Every
# coefficient that a schedule or a change of γ moves is a 0-d CPU tensor, never a Python float, so a
# new value never recompiles. Shapes are static: one compilation per parameter structure (seconds,
# cached on disk by Inductor across processes).
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
