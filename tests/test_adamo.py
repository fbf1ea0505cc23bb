"""AdamO against torch AdamW (γ = 0, bit for bit) and the exact Overshoot(AdamW) form."""

from __future__ import annotations

import pytest
import torch

from overshoot import AdamO, Overshoot
from overshoot.adamo import overshoot_at_step
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
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("maximize", [False, True])
def test_gamma_zero_is_torch_adamw_bit_for_bit(
    path: dict[str, bool], amsgrad: bool, maximize: bool
) -> None:
    data = make_data()
    a, b = copies(make_mlp(), 2)
    kw = dict(
        lr=3e-3,
        betas=(0.85, 0.99),
        weight_decay=0.05,
        amsgrad=amsgrad,
        maximize=maximize,
        **path,
    )
    torch_opt = torch.optim.AdamW(a.parameters(), **kw)  # type: ignore[arg-type]
    ours = AdamO(b.parameters(), overshoot=0.0, **kw)  # type: ignore[arg-type]
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, 80) for o in (torch_opt, ours)]
    assert train(a, torch_opt, 80, data, scheds[0]) == train(b, ours, 80, data, scheds[1])
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def _run_against_wrapper(eps: float, lr: float, steps: int = 200) -> tuple[float, float]:
    """Worst max-relative gap of base weights and of per-step losses, AdamO vs Overshoot(AdamW)."""
    data = make_data(torch.float64)
    a, b = copies(make_mlp(torch.float64), 2)
    ours = AdamO(
        a.parameters(), lr=lr, eps=eps, weight_decay=0.0, overshoot=5.0, overshoot_delay=None
    )
    exact = Overshoot(torch.optim.AdamW(b.parameters(), lr=lr, eps=eps, weight_decay=0.0), 5.0)
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, steps) for o in (ours, exact)]
    worst_w = worst_l = 0.0
    for t in range(steps):
        (la,) = train(a, ours, 1, data, scheds[0], start=t)
        (lb,) = train(b, exact, 1, data, scheds[1], start=t)
        worst_l = max(worst_l, abs(la - lb) / abs(lb))
        with ours.base_weights(), exact.base_weights():
            worst_w = max(worst_w, max_rel_diff(params_of(a), params_of(b)))
    return worst_w, worst_l


def test_exact_up_to_the_denominator_change() -> None:
    """Adam's denominator nearly constant (large ε): AdamO is the exact form (measured 1.2e-5)."""
    worst_w, worst_l = _run_against_wrapper(eps=1e3, lr=50.0)
    assert worst_w < 1e-4
    assert worst_l < 1e-5


def test_stays_close_to_exact_form_without_delay() -> None:
    """Realistic ε: measured 8.0e-2 on weights, 1.5e-2 on losses, set by the first steps."""
    worst_w, worst_l = _run_against_wrapper(eps=1e-8, lr=2e-3)
    assert worst_w < 0.15
    assert worst_l < 0.03


def test_overshoot_delay_ramp() -> None:
    assert [overshoot_at_step(t, 5, 50) for t in (0, 1, 50, 51, 53, 55, 56, 1000)] == [
        0,
        0,
        0,
        1,
        3,
        5,
        5,
        5,
    ]
    assert [overshoot_at_step(t, 5, None) for t in (0, 1, 2)] == [0, 5, 5]
    assert overshoot_at_step(52, 0.5, 50) == 0.5


def test_delay_steps_are_plain_adamw() -> None:
    data = make_data()
    a, b = copies(make_mlp(), 2)
    torch_opt = torch.optim.AdamW(a.parameters(), lr=1e-3)
    ours = AdamO(b.parameters(), lr=1e-3, overshoot=5.0, overshoot_delay=20)
    assert train(a, torch_opt, 20, data) == train(b, ours, 20, data)
    assert train(a, torch_opt, 5, data, start=20) != train(b, ours, 5, data, start=20)


def test_base_offset_formula() -> None:
    model = make_mlp(torch.float64)
    opt = AdamO(model.parameters(), lr=0.01, overshoot=3.0, overshoot_delay=1)
    train(model, opt, 4, make_data(torch.float64))
    held = params_of(model)
    with opt.base_weights():
        for p, h in zip(model.parameters(), held, strict=True):
            s = opt.state[p]
            denom = (s["exp_avg_sq"] / (1 - 0.999**4)).sqrt() + 1e-8
            expected = h + 0.01 * 3.0 / (1 - 0.9**4) * s["exp_avg"] / denom
            torch.testing.assert_close(p, expected, rtol=1e-12, atol=1e-15)
