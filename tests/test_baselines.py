"""The baselines as the reference ran them: NAdam with μ_t = β1, AdamW with the task's decay."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.launch import config
from trainers.fit import optimizer_factory


def nadam_constant_mu(
    params: list[torch.Tensor],
    grads: list[list[torch.Tensor]],
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> list[torch.Tensor]:
    """NAdam (Dozat 2016) with μ_t = β1 at every step and decoupled weight decay, by hand."""
    b1, b2 = betas
    out = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t, step_grads in enumerate(grads, start=1):
        for p, g, m_, v_ in zip(out, step_grads, m, v, strict=True):
            p.mul_(1 - lr * weight_decay)
            m_.mul_(b1).add_((1 - b1) * g)
            v_.mul_(b2).add_((1 - b2) * g * g)
            denom = (v_ / (1 - b2**t)).sqrt() + eps
            p.sub_(lr * (1 - b1) / (1 - b1**t) * g / denom)
            p.sub_(lr * b1 / (1 - b1 ** (t + 1)) * m_ / denom)
    return out


def test_nadam_config_keeps_mu_at_beta1(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["task=mlp_housing", "optimizer=nadam"])
    hp = cfg.task.adam
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(5, 3, generator=gen, dtype=torch.float64) for _ in range(2)]
    grads = [
        [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
        for _ in range(30)
    ]
    held = [p.clone().requires_grad_() for p in params]
    opt = optimizer_factory(cfg)(held)
    for step_grads in grads:
        for p, g in zip(held, step_grads, strict=True):
            p.grad = g.clone()
        opt.step()
    expected = nadam_constant_mu(
        params, grads, hp.lr, (hp.beta1, hp.beta2), hp.eps, hp.weight_decay
    )
    # torch keeps NAdam's running product of μ in float32 (its scalar dtype): ~1e-8 relative.
    # Momentum decay ψ = 0 (μ_t = β1/2) misses by ~1e-1.
    for got, want in zip(held, expected, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-6, atol=0)


def test_adam_family_baseline_is_adamw_with_the_tasks_decay(tmp_path: Path) -> None:
    """AdamO and its baseline differ only in γ: same betas, eps and weight decay."""
    adamw = config(tmp_path, ["task=mlp_housing", "optimizer=adamw"]).optimizer.factory
    adamo = config(tmp_path, ["task=mlp_housing", "optimizer=adamo"]).optimizer.factory
    assert adamw._target_ == "torch.optim.AdamW" and adamw.weight_decay == 0.01
    for key in ("lr", "betas", "eps", "weight_decay"):
        assert adamw[key] == adamo[key], key
