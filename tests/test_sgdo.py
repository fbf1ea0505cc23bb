"""SGDO against torch SGD / Nesterov (bit for bit) and the two-model reference (float64)."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from overshoot import SGDO, TwoModelOvershoot
from tests.helpers import (
    PATH_IDS,
    PATHS,
    copies,
    make_data,
    make_mlp,
    max_rel_diff,
    params_of,
    train,
)


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
def test_gamma_equal_momentum_is_torch_nesterov_bit_for_bit(path: dict[str, bool]) -> None:
    data = make_data()
    a, b = copies(make_mlp(), 2)
    torch_opt = torch.optim.SGD(a.parameters(), lr=0.05, momentum=0.9, nesterov=True, **path)
    ours = SGDO(b.parameters(), lr=0.05, momentum=0.9, overshoot=0.9, **path)
    assert train(a, torch_opt, 150, data) == train(b, ours, 150, data)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("maximize", [False, True])
def test_gamma_zero_is_torch_sgd_bit_for_bit(path: dict[str, bool], maximize: bool) -> None:
    data = make_data()
    a, b = copies(make_mlp(), 2)
    kw = dict(lr=0.05, momentum=0.8, weight_decay=0.01, maximize=maximize, **path)
    lr_fn = partial(torch.optim.lr_scheduler.StepLR, step_size=7, gamma=0.5)
    torch_opt = torch.optim.SGD(a.parameters(), **kw)  # type: ignore[arg-type]
    ours = SGDO(b.parameters(), overshoot=0.0, **kw)  # type: ignore[arg-type]
    train(a, torch_opt, 60, data, lr_fn(torch_opt))
    train(b, ours, 60, data, lr_fn(ours))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def _cosine(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=steps + 1)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("schedule", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_matches_two_model_reference_in_float64(
    foreach: bool, schedule: bool, weight_decay: float
) -> None:
    steps, gamma = 200, 5.0
    data = make_data(torch.float64)
    ref_model, eff_model = copies(make_mlp(torch.float64), 2)
    ref = TwoModelOvershoot(
        ref_model.parameters(),
        partial(torch.optim.SGD, lr=0.02, momentum=0.9, weight_decay=weight_decay),
        overshoot=gamma,
    )
    eff = SGDO(
        eff_model.parameters(),
        lr=0.02,
        momentum=0.9,
        overshoot=gamma,
        weight_decay=weight_decay,
        foreach=foreach,
    )
    ref_sched = _cosine(ref, steps) if schedule else None
    eff_sched = _cosine(eff, steps) if schedule else None
    ref_losses, eff_losses, worst_base = [], [], 0.0
    for t in range(steps):
        ref_losses += train(ref_model, ref, 1, data, ref_sched, start=t)
        eff_losses += train(eff_model, eff, 1, data, eff_sched, start=t)
        with ref.base_weights(), eff.base_weights():
            worst_base = max(worst_base, max_rel_diff(params_of(eff_model), params_of(ref_model)))
    assert worst_base < 1e-12
    assert max_rel_diff(params_of(eff_model), params_of(ref_model)) < 1e-12
    assert eff_losses == pytest.approx(ref_losses, rel=1e-10)


@pytest.mark.parametrize("fused", [False, True])
def test_exact_when_lr_and_gamma_change_between_steps(fused: bool) -> None:
    """A reference-style move_to_base with the current lr would be off after every change.

    Fused, the cuts to a third and to 0 are steps the scaled torch kernel cannot take (r ≤ 0):
    the foreach step takes them and returns the buffer's scale to 1.
    """
    data = make_data(torch.float64)
    ref_model, eff_model = copies(make_mlp(torch.float64), 2)
    ref = TwoModelOvershoot(
        ref_model.parameters(), partial(torch.optim.SGD, lr=0.03, momentum=0.9), 3.0
    )
    eff = SGDO(
        eff_model.parameters(), lr=0.03, momentum=0.9, overshoot=3.0, weight_decay=0.0, fused=fused
    )
    schedule = [(0.03, 3.0), (0.01, 3.0), (0.0, 3.0), (0.02, 7.0), (0.02, 0.0), (0.05, 5.0)]
    for i, (lr, gamma) in enumerate(schedule):
        for opt in (ref, eff):
            for g in opt.param_groups:
                g["lr"], g["overshoot"] = lr, gamma
        train(ref_model, ref, 15, data, start=15 * i)
        train(eff_model, eff, 15, data, start=15 * i)
        assert max_rel_diff(params_of(eff_model), params_of(ref_model)) < 1e-12
        with ref.base_weights(), eff.base_weights():
            assert max_rel_diff(params_of(eff_model), params_of(ref_model)) < 1e-12


def test_base_weights_are_theta_prime_plus_gamma_lr_momentum() -> None:
    model = make_mlp(torch.float64)
    opt = SGDO(model.parameters(), lr=0.1, momentum=0.9, overshoot=5.0)
    train(model, opt, 3, make_data(torch.float64))
    held = params_of(model)
    with opt.base_weights():
        for p, h in zip(model.parameters(), held, strict=True):
            expected = h + 5.0 * 0.1 * opt.state[p]["momentum_buffer"]
            assert torch.equal(p, expected)
