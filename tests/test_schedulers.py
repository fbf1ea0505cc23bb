"""torch's schedulers drive every Overshoot optimizer as they drive torch's: the wrapper and the
two-model reference expose their base optimizer's hyperparameters (``defaults``, shared
``param_groups``), so momentum cycling reaches the base, and the three forms of SGD-momentum
Overshoot stay one trajectory under every schedule."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch

from overshoot import SGDO, Overshoot, TwoModelOvershoot
from tests.helpers import loss_fn, make_data, make_mlp, max_rel_diff

STEPS = 120
GAMMA = 3.0

Scheduler = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]
SCHEDULERS: dict[str, Scheduler] = {
    "one_cycle": lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.05, total_steps=STEPS, base_momentum=0.8, max_momentum=0.95
    ),
    "cyclic": lambda opt: torch.optim.lr_scheduler.CyclicLR(
        opt, base_lr=0.005, max_lr=0.05, step_size_up=15, base_momentum=0.8, max_momentum=0.95
    ),
    "plateau": lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=0.5, patience=3, threshold=0.05
    ),
    "lambda": lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.98**t),
}
FORMS: dict[str, Callable[[torch.nn.Module], torch.optim.Optimizer]] = {
    "sgdo": lambda m: SGDO(m.parameters(), lr=0.02, momentum=0.9, overshoot=GAMMA),
    "wrapper": lambda m: Overshoot(
        torch.optim.SGD(m.parameters(), lr=0.02, momentum=0.9), overshoot=GAMMA
    ),
    "two_models": lambda m: TwoModelOvershoot(
        m.parameters(), functools.partial(torch.optim.SGD, lr=0.02, momentum=0.9), GAMMA
    ),
}


def trajectory(form: str, schedule: str) -> tuple[list[torch.Tensor], list[float], list[float]]:
    """Base weights after the run, and the learning rates and momenta the schedule set."""
    model = make_mlp(torch.float64)
    data = make_data(torch.float64)
    opt = FORMS[form](model)
    sched = SCHEDULERS[schedule](opt)
    lrs, momenta = [], []
    for t in range(STEPS):
        opt.zero_grad()
        loss = loss_fn(model, *data, t)
        loss.backward()
        opt.step()
        if schedule == "plateau":
            sched.step(loss.item())
        else:
            sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        momenta.append(opt.param_groups[0]["momentum"])
    with opt.base_weights():  # type: ignore[attr-defined]
        return [p.detach().clone() for p in model.parameters()], lrs, momenta


@pytest.mark.parametrize("schedule", list(SCHEDULERS))
def test_every_form_follows_the_schedule_to_the_same_weights(schedule: str) -> None:
    base, lrs, momenta = trajectory("sgdo", schedule)
    assert len(set(lrs)) > 3  # the schedule moved the rate
    if schedule in ("one_cycle", "cyclic"):
        assert min(momenta) == pytest.approx(0.8, abs=0.02) and max(momenta) == 0.95
    for form in ("wrapper", "two_models"):
        other, other_lrs, other_momenta = trajectory(form, schedule)
        assert other_lrs == lrs and other_momenta == momenta, form
        assert max_rel_diff(other, base) <= 1e-12, form


@pytest.mark.parametrize("form", ["wrapper", "two_models"])
def test_wrappers_expose_their_base_optimizers_hyperparameters(form: str) -> None:
    opt = FORMS[form](make_mlp(torch.float64))
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["overshoot"] == GAMMA
    assert opt.param_groups[0]["momentum"] == 0.9
