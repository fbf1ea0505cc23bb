"""The exact wrapper and the two-model reference against a hand-written two-model loop."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from overshoot import Overshoot, TwoModelOvershoot
from tests.helpers import copies, loss_fn, make_data, make_mlp, max_rel_diff, params_of, train

OPTIMIZERS = {
    "sgd_momentum": partial(torch.optim.SGD, lr=0.02, momentum=0.9, weight_decay=1e-3),
    "adamw": partial(torch.optim.AdamW, lr=2e-3, weight_decay=0.01),
    "nadam": partial(torch.optim.NAdam, lr=2e-3),
    "rmsprop": partial(torch.optim.RMSprop, lr=1e-3, momentum=0.5),
}


def _hand_written_two_models(
    base_opt: partial, gamma: float, steps: int
) -> tuple[list[float], list[torch.Tensor]]:
    """The algorithm as ALGORITHMS.md states it, with two nn.Modules."""
    data = make_data(torch.float64)
    held, base = copies(make_mlp(torch.float64), 2)
    opt = base_opt(base.parameters())
    losses = []
    for t in range(steps):
        held.zero_grad()
        loss = loss_fn(held, *data, t)
        loss.backward()
        losses.append(loss.item())
        old = params_of(base)
        for p, q in zip(held.parameters(), base.parameters(), strict=True):
            q.grad = p.grad.clone()
        opt.step()
        with torch.no_grad():
            for p, q, o in zip(held.parameters(), base.parameters(), old, strict=True):
                p.copy_(q + gamma * (q - o))
    return losses, params_of(base)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("kind", ["wrapper", "two_models"])
def test_matches_hand_written_two_model_loop(name: str, kind: str) -> None:
    steps, gamma = 120, 5.0
    ref_losses, ref_base = _hand_written_two_models(OPTIMIZERS[name], gamma, steps)
    data = make_data(torch.float64)
    model = make_mlp(torch.float64)
    if kind == "wrapper":
        opt: Overshoot | TwoModelOvershoot = Overshoot(OPTIMIZERS[name](model.parameters()), gamma)
    else:
        opt = TwoModelOvershoot(model.parameters(), OPTIMIZERS[name], gamma)
    losses = train(model, opt, steps, data)
    assert losses == pytest.approx(ref_losses, rel=1e-9)
    with opt.base_weights():
        assert max_rel_diff(params_of(model), ref_base) < 1e-12


@pytest.mark.parametrize("foreach", [False, True])
def test_wrapper_with_gamma_zero_is_the_inner_optimizer_bit_for_bit(foreach: bool) -> None:
    data = make_data()
    a, b = copies(make_mlp(), 2)
    plain = torch.optim.AdamW(a.parameters(), lr=1e-3, foreach=foreach)
    wrapped = Overshoot(torch.optim.AdamW(b.parameters(), lr=1e-3, foreach=foreach), 0.0)
    assert train(a, plain, 50, data) == train(b, wrapped, 50, data)


def test_scheduler_drives_the_inner_optimizer() -> None:
    model = make_mlp()
    inner = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = Overshoot(inner, 3.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train(model, opt, 2, make_data(), sched)
    assert inner.param_groups[0]["lr"] == pytest.approx(0.025)
    assert opt.param_groups is inner.param_groups


def test_two_models_clipping_applies_to_the_stepped_gradients() -> None:
    """Clipping the optimizer's params between backward and step must change the update."""
    data = make_data()
    results = []
    for clip in (False, True):
        model = make_mlp()
        opt = TwoModelOvershoot(model.parameters(), partial(torch.optim.SGD, lr=0.1), 2.0)
        opt.zero_grad()
        loss_fn(model, *data, 0).backward()
        if clip:
            params = [p for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, 1e-3)
        opt.step()
        results.append(params_of(model))
    assert max_rel_diff(results[0], results[1]) > 1e-3
