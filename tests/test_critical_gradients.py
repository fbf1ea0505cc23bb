"""Critical Gradients: the priority buffer and the update against hand-computed steps."""

from __future__ import annotations

import copy

import pytest
import torch

from overshoot import CriticalGradients
from tests.helpers import loss_fn, make_data, make_mlp, train


def _scalar_run(
    grads: list[float], aggr: str = "mean", kappa: float = 1.0
) -> tuple[torch.nn.Parameter, CriticalGradients]:
    p = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
    opt = CriticalGradients(torch.optim.SGD([p], lr=1.0), topc=2, decay=0.5, kappa=kappa, aggr=aggr)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p, opt


def _buffer(opt: CriticalGradients, p: torch.Tensor) -> tuple[list[float], list[float]]:
    state = opt.state[p]
    return state["critical_grads"].tolist(), state["critical_norms"].tolist()


def test_buffer_fills_keeps_the_largest_norms_replaces_the_smallest_and_decays() -> None:
    p, opt = _scalar_run([1.0])
    assert _buffer(opt, p) == ([1.0, 0.0], [0.5, float("-inf")])  # key |g| = 1, decayed by 0.5
    p, opt = _scalar_run([1.0, 3.0])
    assert _buffer(opt, p) == ([1.0, 3.0], [0.25, 1.5])
    p, opt = _scalar_run([1.0, 3.0, 2.0])  # full: 2 beats the smallest key 0.25 and replaces it
    assert _buffer(opt, p) == ([2.0, 3.0], [1.0, 0.75])
    p, opt = _scalar_run([1.0, 3.0, 2.0, 0.5])  # 0.5 does not beat 0.75: buffer only decays
    assert _buffer(opt, p) == ([2.0, 3.0], [0.5, 0.375])


def test_update_matches_hand_computed_steps() -> None:
    # mean: (g + Σ buffer) / (n + 1) with the buffer before g enters: 1, (3+1)/2, (2+1+3)/3, ...
    p, _ = _scalar_run([1.0, 3.0, 2.0, 0.5])
    assert p.item() == -(1.0 + 2.0 + 2.0 + 5.5 / 3)
    # sum: g + κ · mean(buffer): 1, 3 + 0.5·1, 2 + 0.5·(1+3)/2
    p, _ = _scalar_run([1.0, 3.0, 2.0], aggr="sum", kappa=0.5)
    assert p.item() == -(1.0 + 3.5 + 3.0)


def test_synced_keys_are_the_sum_of_the_group_norms() -> None:
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(3))
    opt = CriticalGradients(torch.optim.SGD([a, b], lr=0.1), topc=3, decay=1.0)
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.0, 1.0])
    opt.step()
    assert opt.state[a]["critical_norms"][0] == opt.state[b]["critical_norms"][0] == 6.0
    unsynced = CriticalGradients(torch.optim.SGD([a, b], lr=0.1), topc=3, synced=False, decay=1.0)
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.0, 1.0])
    unsynced.step()
    assert unsynced.state[a]["critical_norms"][0] == 5.0
    assert unsynced.state[b]["critical_norms"][0] == 1.0


def test_kappa_zero_with_sum_is_the_inner_optimizer_exactly() -> None:
    data = make_data(torch.float64)
    model = make_mlp(torch.float64)
    twin = copy.deepcopy(model)
    inner = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = train(model, CriticalGradients(inner, kappa=0.0, aggr="sum"), 30, data)
    assert losses == train(twin, torch.optim.Adam(twin.parameters(), lr=1e-2), 30, data)


def test_state_dict_round_trip_continues_identically() -> None:
    data = make_data(torch.float64)

    def build(model: torch.nn.Module) -> CriticalGradients:
        return CriticalGradients(torch.optim.Adam(model.parameters(), lr=1e-2), topc=3)

    model = make_mlp(torch.float64)
    opt = build(model)
    train(model, opt, 7, data)
    resumed_model = copy.deepcopy(model)
    resumed = build(resumed_model)
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
    for t in range(7, 15):
        for m, o in ((model, opt), (resumed_model, resumed)):
            o.zero_grad()
            loss_fn(m, *data, t).backward()
            o.step()
    for p, q in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(p, q)


def _list_buffer_sgd(
    model: torch.nn.Module, steps: int, lr: float, topc: int, decay: float
) -> None:
    """The paper's SGD_C written plainly: per tensor a list of [key, gradient] entries."""
    data = make_data(torch.float64)
    buffers: list[list[list[object]]] = [[] for _ in model.parameters()]
    for t in range(steps):
        model.zero_grad()
        loss_fn(model, *data, t).backward()
        params = list(model.parameters())
        key = sum(float(p.grad.norm()) for p in params)
        with torch.no_grad():
            for p, buf in zip(params, buffers, strict=True):
                g = p.grad.clone()
                aggregate = (g + sum((e[1] for e in buf), torch.zeros_like(g))) / (len(buf) + 1)
                if len(buf) < topc:
                    buf.append([key, g])
                else:
                    smallest = min(buf, key=lambda e: e[0])
                    if key > smallest[0]:
                        smallest[:] = [key, g]
                for e in buf:
                    e[0] *= decay
                p.sub_(lr * aggregate)


def test_matches_a_plain_list_implementation_of_the_paper() -> None:
    model = make_mlp(torch.float64)
    oracle = copy.deepcopy(model)
    opt = CriticalGradients(torch.optim.SGD(model.parameters(), lr=0.05), topc=4, decay=0.7)
    train(model, opt, 40, make_data(torch.float64))
    _list_buffer_sgd(oracle, 40, lr=0.05, topc=4, decay=0.7)
    for p, q in zip(model.parameters(), oracle.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_training_reduces_the_loss() -> None:
    data = make_data(torch.float32)
    model = make_mlp(torch.float32)
    opt = CriticalGradients(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    losses = train(model, opt, 200, data)
    assert sum(losses[-8:]) < 0.7 * sum(losses[:8])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"topc": 0}, "Invalid topc: 0"),
        ({"decay": 0.0}, "Invalid decay: 0.0"),
        ({"kappa": -1.0}, "Invalid kappa: -1.0"),
        ({"aggr": "max"}, "Invalid aggr: 'max' (valid: mean, sum)"),
    ],
)
def test_bad_hyperparameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CriticalGradients(torch.optim.SGD([p], lr=0.1), **kwargs)  # type: ignore[arg-type]
