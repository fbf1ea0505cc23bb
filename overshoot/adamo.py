r"""AdamO: AdamW with Overshoot, with the memory of torch's AdamW.

The parameters hold θ′_t = θ_t − k_t m_t / d_t with k_t = η_{t−1} γ_{t−1} / c1_{t−1}, where θ is
what the base AdamW (decoupled weight decay λ at the base weights) would hold, c1_t = 1 − β1^t and
d_t = sqrt(v_t / c2_t) + ε. Eliminating θ_t and m_t from the AdamW step, with g taken at θ′_t:

    m  ← β1 m + (1 − β1) g
    v  ← β2 v + (1 − β2) g²
    θ′ ← θ′ (1 − η λ)
    θ′ ← θ′ − [ (k′ (1 − β1) / β1) g + (η / c1 + η γ_t / c1 − k′ / β1) m ] / d
    with k′ = (1 − η λ) k_t

The one approximation is d_t ≈ d_{t+1} (the denominator changes a little between steps); the
learning rate, the bias correction and the weight decay are exact, also under schedules, because
η and γ of the last step are kept in the state. ``Overshoot(torch.optim.AdamW(...))`` is the exact
form. γ = 0 is torch ``AdamW`` bit for bit on CPU.

Overshoot delay (reference behaviour): the factor in force after step t is
γ_t = clamp(t − delay, 0, γ): zero for ``overshoot_delay`` steps, then +1 per step up to γ.
``overshoot_delay=None`` applies γ from the first step, as the exact wrapper does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from overshoot.base import (
    Kernel,
    OvershootOptimizer,
    buckets,
    check_fused,
    check_fused_flags,
    check_overshoot_hparams,
    scalars,
    use_foreach,
)

__all__ = ["AdamO", "adamo", "overshoot_at_step"]


def overshoot_at_step(step: int, overshoot: float, delay: int | None) -> float:
    """The overshoot factor in force after ``step`` updates (0 before the first)."""
    if step <= 0:
        return 0.0
    if delay is None:
        return float(overshoot)
    return float(min(max(step - delay, 0), overshoot))


class _Tensors(NamedTuple):
    """One step's tensors and per-tensor scalars (``adamo``'s arguments say what each is)."""

    params: list[Tensor]
    grads: list[Tensor]
    exp_avgs: list[Tensor]
    exp_avg_sqs: list[Tensor]
    max_exp_avg_sqs: list[Tensor | None]
    steps: list[int]
    prevs: list[tuple[float, float]]
    overshoots: list[float]


class _Hyper(NamedTuple):
    """A param group's hyperparameters for one step."""

    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    maximize: bool


def _coefficients(
    step: int, prev: tuple[float, float], overshoot: float, h: _Hyper
) -> tuple[float, float, float]:
    """Return (cm, cg, sqrt(c2)): the update is θ′ −= (cm m + cg g) / d."""
    lr, beta1, beta2, weight_decay = h.lr, h.beta1, h.beta2, h.weight_decay
    lr_prev, overshoot_prev = prev
    c1 = 1 - beta1**step
    k_old = 0.0
    if overshoot_prev != 0.0:
        k_old = (1 - lr * weight_decay) * lr_prev * overshoot_prev / (1 - beta1 ** (step - 1))
    step_size = lr / c1
    cm = step_size + lr * overshoot / c1 - k_old / beta1
    cg = k_old * (1 - beta1) / beta1
    return cm, cg, (1 - beta2**step) ** 0.5


def _keys(
    params: list[Tensor], steps: list[int], prevs: list[tuple[float, float]], gammas: list[float]
) -> list[tuple[Any, ...]]:
    """A kernel call's bucket: device, dtype and the step's per-tensor scalars (t, the last
    step's η and γ, this step's γ)."""
    return [
        (p.device, p.dtype, t, prev, gamma)
        for p, t, prev, gamma in zip(params, steps, prevs, gammas, strict=True)
    ]


def _single_tensor_adamo(t: _Tensors, h: _Hyper) -> None:
    params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, prevs, overshoots = t
    lr, beta1, beta2, eps, weight_decay, maximize = h
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        exp_avg, exp_avg_sq, max_sq = exp_avgs[i], exp_avg_sqs[i], max_exp_avg_sqs[i]
        cm, cg, c2_sqrt = _coefficients(steps[i], prevs[i], overshoots[i], h)
        if weight_decay != 0.0:
            param.mul_(1 - lr * weight_decay)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        if max_sq is not None:
            torch.maximum(max_sq, exp_avg_sq, out=max_sq)
            exp_avg_sq = max_sq
        if cg == 0.0:
            denom = (exp_avg_sq.sqrt() / c2_sqrt).add_(eps)
            param.addcdiv_(exp_avg, denom, value=-cm)
        else:
            # sqrt(v)/s + ε = (sqrt(v) + ε s)/s saves a pass; the two terms go in place.
            denom = exp_avg_sq.sqrt().add_(eps * c2_sqrt)
            param.addcdiv_(exp_avg, denom, value=-cm * c2_sqrt)
            param.addcdiv_(grad, denom, value=-cg * c2_sqrt)


def _multi_tensor_adamo(t: _Tensors, h: _Hyper) -> None:
    params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, prevs, overshoots = t
    lr, beta1, beta2, eps, weight_decay, maximize = h
    keys = _keys(params, steps, prevs, overshoots)
    for (_, _, step, prev, overshoot), idx in buckets(keys).items():
        cm, cg, c2_sqrt = _coefficients(step, prev, overshoot, h)
        ps = [params[i] for i in idx]
        gs = [grads[i] for i in idx]
        if maximize:
            gs = list(torch._foreach_neg(gs))
        ms = [exp_avgs[i] for i in idx]
        vs = [exp_avg_sqs[i] for i in idx]
        if weight_decay != 0.0:
            torch._foreach_mul_(ps, 1 - lr * weight_decay)
        torch._foreach_lerp_(ms, gs, 1 - beta1)
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, gs, gs, value=1 - beta2)
        maxes = [max_exp_avg_sqs[i] for i in idx]
        if all(m is not None for m in maxes):
            vmax = [m for m in maxes if m is not None]
            torch._foreach_maximum_(vmax, vs)
            vs = vmax
        denom = list(torch._foreach_sqrt(vs))
        if cg == 0.0:
            torch._foreach_div_(denom, c2_sqrt)
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(ps, ms, denom, value=-cm)
        else:
            torch._foreach_add_(denom, eps * c2_sqrt)
            torch._foreach_addcdiv_(ps, ms, denom, value=-cm * c2_sqrt)
            torch._foreach_addcdiv_(ps, gs, denom, value=-cg * c2_sqrt)


def _adamo_kernel(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor] | None,
    decay: Tensor,
    beta1: Tensor,
    beta2: Tensor,
    a: Tensor,
    b: Tensor,
    e: Tensor,
    maximize: bool,
) -> None:
    """θ′ ← θ′ decay − (a m + b g) / (sqrt(v) + e): the update above, scaled by sqrt(c2)."""
    for i, (p, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs, strict=True)):
        if maximize:
            g = g.neg()
        p.mul_(decay)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).add_((1 - beta2) * g * g)
        if max_exp_avg_sqs is not None:
            torch.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
            v = max_exp_avg_sqs[i]
        p.sub_((a * m + b * g) / (v.sqrt() + e))


_ADAMO_KERNEL = Kernel(_adamo_kernel)


def _fused_adamo(t: _Tensors, h: _Hyper) -> None:
    """One pass per tensor. While no overshoot is in force (γ = 0, the delay) the update is
    AdamW's and runs torch's fused AdamW kernel, equal to torch's fused AdamW bit for bit;
    otherwise the compiled AdamO kernel."""
    params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, prevs, overshoots = t
    lr, beta1, beta2, eps, weight_decay, maximize = h
    keys = _keys(params, steps, prevs, overshoots)
    for (device, dtype, step, prev, overshoot), idx in buckets(keys).items():
        ps = [params[i] for i in idx]
        gs = [grads[i] for i in idx]
        ms = [exp_avgs[i] for i in idx]
        vs = [exp_avg_sqs[i] for i in idx]
        maxes = [max_exp_avg_sqs[i] for i in idx]
        vmax = [m for m in maxes if m is not None]
        amsgrad = len(vmax) == len(idx)
        if overshoot == 0.0 and prev[1] == 0.0:
            step_t = torch.full((), float(step), dtype=torch.float32, device=device)
            torch._fused_adamw_(
                ps,
                gs,
                ms,
                vs,
                vmax if amsgrad else [],
                [step_t] * len(idx),
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=weight_decay,
                eps=eps,
                amsgrad=amsgrad,
                maximize=maximize,
            )
            continue
        cm, cg, c2_sqrt = _coefficients(step, prev, overshoot, h)
        coefs = scalars(
            dtype, 1 - lr * weight_decay, beta1, beta2, cm * c2_sqrt, cg * c2_sqrt, eps * c2_sqrt
        )
        _ADAMO_KERNEL(ps, gs, ms, vs, vmax if amsgrad else None, *coefs, maximize)


def adamo(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor | None],
    steps: list[int],
    prevs: list[tuple[float, float]],
    overshoots: list[float],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    maximize: bool = False,
    foreach: bool = False,
    fused: bool = False,
) -> None:
    """Functional AdamO step.

    ``steps`` are the step counts after this update (1-based), ``prevs`` (η, γ) of each
    parameter's previous step and ``overshoots`` the factor γ_t in force after this one.
    Never writes the gradients.
    """
    fn = _fused_adamo if fused else _multi_tensor_adamo if foreach else _single_tensor_adamo
    fn(
        _Tensors(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, prevs, overshoots),
        _Hyper(lr, beta1, beta2, eps, weight_decay, maximize),
    )


class AdamO(OvershootOptimizer):
    """AdamW whose gradients are taken γ× further along the last update (approximate form).

    Same tensor state as torch ``AdamW``. The parameters hold the overshot weights θ′; use
    ``move_to_base()`` / ``base_weights()`` to evaluate at θ. Differs from the exact
    ``Overshoot(AdamW)`` only through the change of Adam's denominator between two steps.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        overshoot: float = 5.0,
        overshoot_delay: int | None = 50,
        foreach: bool | None = None,
        maximize: bool = False,
        amsgrad: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_fused_flags("AdamO", fused, foreach)
        hyper = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        hyper.update(overshoot=overshoot, overshoot_delay=overshoot_delay)
        super().__init__(params, dict(hyper, foreach=foreach, maximize=maximize, fused=fused))

    def _check_group(self, g: dict[str, Any]) -> None:
        _check_adam_hparams(
            g["lr"], g["betas"], g["eps"], g["weight_decay"], g["overshoot"], g["overshoot_delay"]
        )

    @property
    def compiles(self) -> bool:
        return any(group.get("fused") for group in self.param_groups)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one AdamO step with the gradients currently in ``p.grad`` (taken at θ′)."""
        loss = self._begin_step(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if group.get("fused"):
                check_fused("AdamO", [p for p in params if not self.state[p]])
            lr = float(group["lr"])
            states = [self._state_for(p, group["amsgrad"]) for p in params]
            steps = [s["step"] + 1 for s in states]
            overshoots = [
                overshoot_at_step(t, group["overshoot"], group["overshoot_delay"]) for t in steps
            ]
            adamo(
                params,
                [p.grad for p in params],
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [s.get("max_exp_avg_sq") for s in states],
                steps,
                [(s["lr_prev"], s["overshoot_prev"]) for s in states],
                overshoots,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                maximize=group["maximize"],
                foreach=use_foreach(group["foreach"], params),
                fused=bool(group.get("fused")),
            )
            for s, t, gamma in zip(states, steps, overshoots, strict=True):
                s["step"] = t
                s["lr_prev"] = lr
                s["overshoot_prev"] = gamma
        return loss

    def _state_for(self, p: Tensor, amsgrad: bool) -> dict[str, Any]:
        state: dict[str, Any] = self.state[p]
        if not state:
            state["step"] = 0
            state["lr_prev"] = 0.0
            state["overshoot_prev"] = 0.0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if amsgrad:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _shift(self, to_base: bool) -> None:
        sign = 1.0 if to_base else -1.0
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state.get(p)
                if not state or state["step"] == 0 or state["overshoot_prev"] == 0.0:
                    continue
                t = state["step"]
                c2_sqrt = (1 - beta2**t) ** 0.5
                v = state.get("max_exp_avg_sq", state["exp_avg_sq"])
                denom = (v.sqrt() / c2_sqrt).add_(group["eps"])
                k = state["lr_prev"] * state["overshoot_prev"] / (1 - beta1**t)
                p.addcdiv_(state["exp_avg"], denom, value=sign * k)


def _check_adam_hparams(
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    overshoot: float,
    overshoot_delay: int | None,
) -> None:
    check_overshoot_hparams(overshoot, lr=lr)
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta{i + 1}: {beta} (must be in [0, 1))")
    if betas[0] == 0.0 and overshoot > 0.0:
        raise ValueError(
            f"Invalid beta1: {betas[0]} with overshoot {overshoot}: overshoot needs beta1 > 0"
        )
    if not eps >= 0.0:
        raise ValueError(f"Invalid eps: {eps} (must be >= 0)")
    if not weight_decay >= 0.0:
        raise ValueError(f"Invalid weight_decay: {weight_decay} (must be >= 0)")
    if overshoot_delay is not None and overshoot_delay < 0:
        raise ValueError(f"Invalid overshoot_delay: {overshoot_delay} (must be >= 0 or None)")
