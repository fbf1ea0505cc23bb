r"""SGDO: SGD with momentum and Overshoot, exact, with the memory of torch's SGD(momentum).

The parameters hold θ′_t = θ_t − γ η_{t−1} m_t, where θ is what the two-model reference's base
optimizer (torch SGD, momentum μ, weight decay λ at the *base* weights) would hold. With the
gradient g taken at θ′_t, the base update m_{t+1} = μ m_t + g + λθ_t, θ_{t+1} = θ_t − η_t m_{t+1}
becomes, after eliminating θ_t = θ′_t + γ η_{t−1} m_t and m_t:

    μ′ = μ + λ γ η_{t−1}                       (weight decay at θ folds into the momentum factor)
    d  = g + λ θ′_t
    m  ← μ′ m + d
    θ′ ← θ′ − (γ η_{t−1} / μ′) d − ((1 + γ) η_t − γ η_{t−1} / μ′) m

This is exact in exact arithmetic for any learning-rate schedule: η_{t−1} (the rate of the step
that produced m) is kept in the state as ``lr_prev``, and likewise γ as ``overshoot_prev``, so γ
may change between steps too. Checks that hold bit for bit on CPU:
γ = 0 is torch ``SGD(momentum=μ)``; γ = μ with a constant rate and λ = 0 is torch
``SGD(momentum=μ, nesterov=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from overshoot.base import (
    OvershootOptimizer,
    buckets,
    check_fused,
    check_fused_flags,
    check_overshoot_hparams,
    use_foreach,
)

__all__ = ["SGDO", "sgdo"]


class _Tensors(NamedTuple):
    """One step's parameters, gradients, momentum buffers and each buffer's last (η, γ)."""

    params: list[Tensor]
    grads: list[Tensor]
    bufs: list[Tensor | None]
    prevs: list[tuple[float, float]]


class _Hyper(NamedTuple):
    """A param group's hyperparameters for one step."""

    lr: float
    momentum: float
    overshoot: float
    weight_decay: float
    maximize: bool


def _coefficients(h: _Hyper, prev: tuple[float, float]) -> tuple[float, float, float]:
    """Return (μ′, c, r) such that the update is θ′ −= c·(d + r·m), or θ′ −= r·m when c == 0.

    ``prev`` is (η, γ) of the step that produced m. The forms are chosen so that γ = μ with a
    constant rate gives c = η and r = μ exactly; then the step uses torch's Nesterov operations
    and rounding (one temporary). Otherwise it adds the two terms in place: no allocation, the
    same memory traffic as torch's foreach Nesterov.
    """
    lr, momentum, overshoot, weight_decay = h.lr, h.momentum, h.overshoot, h.weight_decay
    lr_prev, overshoot_prev = prev
    mu = momentum + weight_decay * overshoot_prev * lr_prev
    if overshoot_prev == 0.0 or lr_prev == 0.0:
        return mu, 0.0, (1.0 + overshoot) * lr
    if mu == 0.0:  # momentum set to 0 after __init__ checked it: the update is undefined
        check_overshoot_hparams(overshoot_prev, lr=lr, momentum=momentum)
    if lr == 0.0:
        return mu, overshoot_prev * lr_prev / mu, -1.0
    a = (overshoot_prev / mu) * (lr_prev / lr)
    return mu, lr * a, (overshoot + (1.0 - a)) / a


def _single_tensor_sgdo(t: _Tensors, h: _Hyper) -> None:
    params, grads, bufs, prevs = t
    lr, weight_decay, maximize = h.lr, h.weight_decay, h.maximize
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        mu, c, r = _coefficients(h, prevs[i])
        if weight_decay != 0.0:
            grad = grad.add(param, alpha=weight_decay)
        buf = bufs[i]
        if buf is None:
            buf = bufs[i] = grad.detach().clone()
        else:
            buf.mul_(mu).add_(grad)
        if c == 0.0:
            param.add_(buf, alpha=-r)
        elif c == lr:
            param.add_(grad.add(buf, alpha=r), alpha=-c)
        else:
            param.add_(grad, alpha=-c).add_(buf, alpha=-c * r)


def _multi_tensor_sgdo(t: _Tensors, h: _Hyper) -> None:
    params, grads, bufs, prevs = t
    lr, weight_decay, maximize = h.lr, h.weight_decay, h.maximize
    keys = ((p.device, p.dtype, prev) for p, prev in zip(params, prevs, strict=True))
    for (_, _, prev), idx in buckets(keys).items():
        mu, c, r = _coefficients(h, prev)
        ps = [params[i] for i in idx]
        gs = [grads[i] for i in idx]
        ds: list[Tensor] = list(torch._foreach_neg(gs)) if maximize else gs
        if weight_decay != 0.0:
            if maximize:
                torch._foreach_add_(ds, ps, alpha=weight_decay)
            else:
                ds = list(torch._foreach_add(ds, ps, alpha=weight_decay))
        ms_old, ds_old = [], []
        for j, i in enumerate(idx):
            buf = bufs[i]
            if buf is None:
                bufs[i] = ds[j].detach().clone()
            else:
                ms_old.append(buf)
                ds_old.append(ds[j])
        if ms_old:
            torch._foreach_mul_(ms_old, mu)
            torch._foreach_add_(ms_old, ds_old)
        ms = [cast(Tensor, bufs[i]) for i in idx]
        if c == 0.0:
            torch._foreach_add_(ps, ms, alpha=-r)
        elif c == lr:
            torch._foreach_add_(ps, torch._foreach_add(ds, ms, alpha=r), alpha=-c)
        else:
            torch._foreach_add_(ps, ds, alpha=-c)
            torch._foreach_add_(ps, ms, alpha=-c * r)


def _fused_sgdo(t: _Tensors, scales: list[float], h: _Hyper) -> None:
    r"""One pass per tensor, through torch's own fused SGD kernel.

    The update θ′ −= c d + c r m has two free weights; torch's fused Nesterov step
    b ← μ_f b + (1 − τ) d, θ′ −= η_f (d + μ_f b) has them too if the buffer holds b = α m, a
    scaled momentum: η_f = c, 1 − τ = α′ and μ_f = μ′ α′ / α with α′ = sqrt(r α / μ′). So the
    buffer keeps its scale α in ``scales`` (1 on the other paths, which rescale once on entry).
    The first step, γ = 0 and γ = μ at a constant rate keep α = 1 and are exactly torch's fused
    SGD / Nesterov calls, bit for bit. A step with r ≤ 0 (the rate cut by more than ~8 % at
    once, e.g. the last steps of a cosine schedule) is the foreach step on the buffer brought
    back to α = 1: rare, so a compiled kernel would cost far more to build than it saves.
    """
    params, grads, bufs, prevs = t
    lr, overshoot, weight_decay, maximize = h.lr, h.overshoot, h.weight_decay, h.maximize
    keys = (
        (p.device, p.dtype, prev, buf is None, scale)
        for p, prev, buf, scale in zip(params, prevs, bufs, scales, strict=True)
    )
    for (_, _, prev, first, alpha), idx in buckets(keys).items():
        mu, c, r = _coefficients(h, prev)
        ps = [params[i] for i in idx]
        gs = [grads[i] for i in idx]
        if first:
            for i in idx:
                bufs[i] = torch.zeros_like(params[i])
        ms = [cast(Tensor, bufs[i]) for i in idx]
        alpha_new, dampening = 1.0, 0.0
        if first:
            nesterov = c != 0.0 and c == lr and r == mu
            step = r if c == 0.0 else lr if nesterov else (1.0 + overshoot) * lr
            mom = mu
        elif c == 0.0:
            step, nesterov, mom = r, False, mu / alpha
        elif r > 0.0:
            alpha_new = math.sqrt(r * alpha / mu)
            step, nesterov, mom, dampening = c, True, mu * alpha_new / alpha, 1.0 - alpha_new
        else:
            torch._foreach_div_(ms, alpha)
            _multi_tensor_sgdo(_Tensors(ps, gs, list[Tensor | None](ms), [prev] * len(idx)), h)
            for i in idx:
                scales[i] = 1.0
            continue
        torch._fused_sgd_(
            ps,
            gs,
            ms,
            weight_decay=weight_decay,
            momentum=mom,
            lr=step,
            dampening=dampening,
            nesterov=nesterov,
            maximize=maximize,
            is_first_step=first,
        )
        for i in idx:
            scales[i] = alpha_new


def sgdo(
    params: list[Tensor],
    grads: list[Tensor],
    momentum_buffers: list[Tensor | None],
    prevs: list[tuple[float, float]],
    *,
    lr: float,
    momentum: float,
    overshoot: float,
    weight_decay: float = 0.0,
    maximize: bool = False,
    foreach: bool = False,
    fused: bool = False,
    momentum_scales: list[float] | None = None,
) -> None:
    """Functional SGDO step; ``prevs`` holds (η, γ) of each buffer's last step.

    Fills ``momentum_buffers`` entries that are None (first step); never writes the gradients.
    ``momentum_scales`` (α, default all 1) says each buffer holds α m; the fused path moves it,
    the others bring it back to 1 (one pass, only after the fused path).
    """
    scales = momentum_scales if momentum_scales is not None else [1.0] * len(params)
    h = _Hyper(lr, momentum, overshoot, weight_decay, maximize)
    if fused:
        _fused_sgdo(_Tensors(params, grads, momentum_buffers, prevs), scales, h)
        return
    for i, buf in enumerate(momentum_buffers):
        if scales[i] != 1.0 and buf is not None:
            buf.div_(scales[i])
            scales[i] = 1.0
    fn = _multi_tensor_sgdo if foreach else _single_tensor_sgdo
    fn(_Tensors(params, grads, momentum_buffers, prevs), h)


class SGDO(OvershootOptimizer):
    """SGD with momentum whose gradients are taken γ× further along the last update.

    Same state as torch ``SGD(momentum=μ)`` (one buffer per parameter, plus the floats η and γ of
    the last step and the buffer's scale α: ``fused=True`` keeps α m there, see ``_fused_sgdo``; the
    other paths keep m). The parameters hold the overshot weights θ′; use ``move_to_base()`` /
    ``base_weights()`` to evaluate at θ. Exact (up to float rounding) against the two-model
    reference, including weight decay and any learning-rate schedule. Parameters without a gradient
    in a step are left untouched, as in torch.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.9,
        overshoot: float = 5.0,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_fused_flags("SGDO", fused, foreach)
        hyper = dict(lr=lr, momentum=momentum, overshoot=overshoot, weight_decay=weight_decay)
        super().__init__(params, dict(hyper, foreach=foreach, maximize=maximize, fused=fused))

    def _check_group(self, group: dict[str, Any]) -> None:
        check_overshoot_hparams(group["overshoot"], lr=group["lr"], momentum=group["momentum"])
        if not group["weight_decay"] >= 0.0:
            raise ValueError(f"Invalid weight_decay: {group['weight_decay']} (must be >= 0)")

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one SGDO step with the gradients currently in ``p.grad`` (taken at θ′)."""
        loss = self._begin_step(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr = float(group["lr"])
            states = [self.state[p] for p in params]
            bufs: list[Tensor | None] = [s.get("momentum_buffer") for s in states]
            scales = [s.get("momentum_scale", 1.0) for s in states]
            if group.get("fused"):
                check_fused("SGDO", [p for p, b in zip(params, bufs, strict=True) if b is None])
            sgdo(
                params,
                [p.grad for p in params],
                bufs,
                [
                    (s.get("lr_prev", lr), s.get("overshoot_prev", group["overshoot"]))
                    for s in states
                ],
                lr=lr,
                momentum=group["momentum"],
                overshoot=group["overshoot"],
                weight_decay=group["weight_decay"],
                maximize=group["maximize"],
                foreach=use_foreach(group["foreach"], params),
                fused=bool(group.get("fused")),
                momentum_scales=scales,
            )
            for s, buf, scale in zip(states, bufs, scales, strict=True):
                s["momentum_buffer"] = buf
                s["momentum_scale"] = scale
                s["lr_prev"] = lr
                s["overshoot_prev"] = group["overshoot"]
        return loss

    def _shift(self, to_base: bool) -> None:
        sign = 1.0 if to_base else -1.0
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if state and "momentum_buffer" in state:
                    scale = state.get("momentum_scale", 1.0)
                    coef = state["overshoot_prev"] * state["lr_prev"] / scale
                    if coef != 0.0:
                        p.add_(state["momentum_buffer"], alpha=sign * coef)
