"""Base-weights API, misuse errors, state_dict round trips, gradients and dtypes, for every form."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import partial

import pytest
import torch
from torch import nn

from overshoot import SGDO, AdamO, Overshoot, OvershootOptimizer, TwoModelOvershoot
from tests.helpers import copies, loss_fn, make_data, make_mlp, params_of, train

FACTORIES: dict[str, Callable[[nn.Module], OvershootOptimizer]] = {
    "sgdo": lambda m: SGDO(m.parameters(), lr=0.02, momentum=0.9, overshoot=5.0, weight_decay=1e-3),
    "adamo": lambda m: AdamO(m.parameters(), lr=2e-3, overshoot=5.0, overshoot_delay=3),
    "wrapper": lambda m: Overshoot(torch.optim.NAdam(m.parameters(), lr=2e-3), 5.0),
    "two_models": lambda m: TwoModelOvershoot(
        m.parameters(), partial(torch.optim.SGD, lr=0.02, momentum=0.9), 5.0
    ),
}
KINDS = sorted(FACTORIES)


@pytest.mark.parametrize("kind", KINDS)
def test_move_to_base_then_back_is_identity(kind: str) -> None:
    model = make_mlp(torch.float64)
    opt = FACTORIES[kind](model)
    train(model, opt, 10, make_data(torch.float64))
    held = params_of(model)
    opt.move_to_base()
    assert opt.at_base
    assert any(not torch.equal(p, h) for p, h in zip(model.parameters(), held, strict=True))
    opt.move_to_overshoot()
    for p, h in zip(model.parameters(), held, strict=True):
        torch.testing.assert_close(p, h, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_exact_base_weights_restore_the_held_weights_bit_for_bit(kind: str) -> None:
    """Inside, the same base weights as a plain block; after, θ′ exactly and training goes on
    as if nothing happened (the plain block rounds: θ′ + δ − δ)."""
    data = make_data(torch.float32)
    model, twin, plain = copies(make_mlp(torch.float32), 3)
    opts = [FACTORIES[kind](m) for m in (model, twin, plain)]
    for m, o in zip((model, twin, plain), opts, strict=True):
        train(m, o, 5, data)
    held = params_of(model)
    with opts[0].base_weights(exact=True), opts[2].base_weights():
        assert all(
            torch.equal(p, q) for p, q in zip(params_of(model), params_of(plain), strict=True)
        )
    assert all(torch.equal(p, h) for p, h in zip(model.parameters(), held, strict=True))
    assert not opts[0].at_base
    train(model, opts[0], 5, data, start=5)
    train(twin, opts[1], 5, data, start=5)  # never left θ′
    assert all(torch.equal(p, q) for p, q in zip(params_of(model), params_of(twin), strict=True))


@pytest.mark.parametrize("kind", KINDS)
def test_misuse_raises_clear_errors(kind: str) -> None:
    model = make_mlp()
    opt = FACTORIES[kind](model)
    train(model, opt, 2, make_data())
    with pytest.raises(RuntimeError, match="already at overshoot weights"):
        opt.move_to_overshoot()
    opt.move_to_base()
    with pytest.raises(RuntimeError, match="already at base weights"):
        opt.move_to_base()
    loss_fn(model, *make_data(), 0).backward()
    with pytest.raises(RuntimeError, match=r"step\(\) called while the parameters hold the base"):
        opt.step()
    opt.move_to_overshoot()
    opt.step()


@pytest.mark.parametrize("kind", KINDS)
def test_context_manager_is_reentrant_and_restores_on_error(kind: str) -> None:
    model = make_mlp(torch.float64)
    opt = FACTORIES[kind](model)
    train(model, opt, 5, make_data(torch.float64))
    held = params_of(model)
    with pytest.raises(KeyError), opt.base_weights():
        with opt.base_weights():
            assert opt.at_base
        assert opt.at_base
        raise KeyError("boom")
    assert not opt.at_base
    for p, h in zip(model.parameters(), held, strict=True):
        torch.testing.assert_close(p, h, rtol=1e-14, atol=1e-15)


def _save(model: nn.Module, opt: torch.optim.Optimizer) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    return buf.getvalue()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("saved_at_base", [False, True])
def test_state_dict_round_trip_continues_identically(kind: str, saved_at_base: bool) -> None:
    data = make_data()
    model = make_mlp()
    opt = FACTORIES[kind](model)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 40)
    train(model, opt, 15, data, sched)
    if saved_at_base:
        opt.move_to_base()
    blob, sched_state = _save(model, opt), sched.state_dict()
    if saved_at_base:
        opt.move_to_overshoot()
    expected = train(model, opt, 15, data, sched, start=15)

    fresh = make_mlp(seed=123)
    fresh_opt = FACTORIES[kind](fresh)
    loaded = torch.load(io.BytesIO(blob))
    fresh.load_state_dict(loaded["model"])
    fresh_opt.load_state_dict(loaded["opt"])
    fresh_sched = torch.optim.lr_scheduler.CosineAnnealingLR(fresh_opt, 40)
    fresh_sched.load_state_dict(sched_state)
    assert fresh_opt.at_base == saved_at_base
    if saved_at_base:
        fresh_opt.move_to_overshoot()
    got = train(fresh, fresh_opt, 15, data, fresh_sched, start=15)
    if saved_at_base:
        assert got == pytest.approx(expected, rel=1e-5)
    else:
        assert got == expected
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6 if saved_at_base else 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_are_never_modified(kind: str) -> None:
    data = make_data()
    model = make_mlp()
    opt = FACTORIES[kind](model)
    for t in range(4):
        opt.zero_grad()
        loss_fn(model, *data, t).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        opt.step()
        after = [p.grad for p in model.parameters() if p.grad is not None]
        assert all(torch.equal(g, a) for g, a in zip(grads, after, strict=True))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_dtypes_train_and_keep_their_dtype(kind: str, dtype: torch.dtype) -> None:
    data = make_data(dtype)
    model = make_mlp(dtype)
    opt = FACTORIES[kind](model)
    losses = train(model, opt, 60, data)
    assert all(p.dtype == dtype and torch.isfinite(p).all() for p in model.parameters())
    assert sum(losses[-8:]) < sum(losses[:8])
    with opt.base_weights():
        assert all(p.dtype == dtype for p in model.parameters())


def test_loading_into_a_fresh_model_keeps_state_bytes_like_torch() -> None:
    model = make_mlp()
    a, b = copies(model, 2)
    ours, ref = SGDO(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    train(a, ours, 2, make_data())
    train(b, ref, 2, make_data())

    def nbytes(o: torch.optim.Optimizer) -> int:
        return sum(v.nbytes for s in o.state.values() for v in s.values() if torch.is_tensor(v))

    assert nbytes(ours) == nbytes(ref)
    fresh_a, fresh_b = copies(model, 2)  # a fresh model and optimizer take the saved state
    ours_again = SGDO(fresh_a.parameters(), lr=0.1)
    ref_again = torch.optim.SGD(fresh_b.parameters(), lr=0.1, momentum=0.9)
    ours_again.load_state_dict(ours.state_dict())
    ref_again.load_state_dict(ref.state_dict())
    assert nbytes(ours_again) == nbytes(ref_again) == nbytes(ours)
    for saved, loaded in zip(ours.state.values(), ours_again.state.values(), strict=True):
        assert saved.keys() == loaded.keys()
        for key, value in saved.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(loaded[key])), key


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda ps: SGDO(ps, lr=0.1, momentum=0.0, overshoot=5.0), "overshoot needs momentum > 0"),
        (lambda ps: SGDO(ps, lr=-0.1), "Invalid learning rate: -0.1"),
        (lambda ps: SGDO(ps, overshoot=-1.0), "Invalid overshoot factor: -1.0"),
        (lambda ps: SGDO(ps, momentum=1.0), "Invalid momentum: 1.0"),
        (lambda ps: SGDO(ps, weight_decay=-1.0), "Invalid weight_decay: -1.0"),
        (lambda ps: AdamO(ps, betas=(1.0, 0.999)), "Invalid beta1: 1.0"),
        (lambda ps: AdamO(ps, betas=(0.0, 0.999), overshoot=3.0), "overshoot needs beta1 > 0"),
        (lambda ps: AdamO(ps, overshoot_delay=-2), "Invalid overshoot_delay: -2"),
        (lambda ps: AdamO(ps, eps=-1.0), "Invalid eps: -1.0"),
        (lambda ps: Overshoot(torch.optim.SGD(ps, lr=0.1), -2.0), "Invalid overshoot factor: -2.0"),
    ],
)
def test_invalid_hyperparameters(
    build: Callable[[list[torch.Tensor]], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build(list(make_mlp().parameters()))


def test_sgdo_zero_momentum_allowed_without_overshoot() -> None:
    a, b = copies(make_mlp(), 2)
    torch_opt = torch.optim.SGD(a.parameters(), lr=0.1)
    ours = SGDO(b.parameters(), lr=0.1, momentum=0.0, overshoot=0.0)
    assert train(a, torch_opt, 10, make_data()) == train(b, ours, 10, make_data())


def test_invalid_value_set_by_a_user_between_steps_is_caught_at_step() -> None:
    model = make_mlp()
    opt = SGDO(model.parameters(), lr=0.1)
    opt.param_groups[0]["momentum"] = 0.0
    loss_fn(model, *make_data(), 0).backward()
    with pytest.raises(ValueError, match="overshoot needs momentum > 0"):
        opt.step()
