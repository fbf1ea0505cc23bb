"""Where a run computes: the default device and precision; data and optimizer state there."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from data.tensors import Split, TensorDataModule
from overshoot import SGDO
from trainers.cli.checks import resolved_precision
from trainers.fit.module import state_to_device


@pytest.mark.parametrize(
    ("accelerator", "cuda", "bf16", "expected"),
    [
        ("auto", False, False, "32-true"),
        ("auto", True, True, "bf16-mixed"),
        ("gpu", True, True, "bf16-mixed"),
        ("auto", True, False, "32-true"),  # e.g. a V100: no bf16
        ("cpu", True, True, "32-true"),
    ],
)
def test_auto_precision_is_bf16_mixed_on_a_bf16_gpu_else_float32(
    monkeypatch: pytest.MonkeyPatch, accelerator: str, cuda: bool, bf16: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    assert resolved_precision("auto", accelerator) == expected


class Ramp(TensorDataModule):
    def load(self) -> tuple[Split, Split, Split]:
        x = torch.arange(40.0).view(20, 2)
        return (x[:12], x[:12, 0]), (x[12:16], x[12:16, 0]), (x[16:], x[16:, 0])


def test_splits_and_batches_live_on_the_trainers_device() -> None:
    # "meta" stands in for a GPU: a device other than the CPU that any machine has.
    data = Ramp(batch_size=5, seed=3)
    data.setup()  # before a trainer is attached (main.py counts the batches): on the CPU
    cpu_batches = [x for x, _ in data.train_dataloader()]
    data.trainer = SimpleNamespace(  # type: ignore[assignment]
        strategy=SimpleNamespace(root_device=torch.device("meta")), global_rank=0, world_size=1
    )
    data.setup("fit")
    assert {t.device.type for split in data.splits.values() for t in split} == {"meta"}
    batches = [x for x, _ in data.train_dataloader()]
    assert [b.device.type for b in batches] == ["meta"] * 3
    assert [b.shape for b in batches] == [b.shape for b in cpu_batches] == [(5, 2)] * 2 + [(2, 2)]
    assert next(iter(data.val_dataloader()))[0].device.type == "meta"


def test_state_to_device_moves_buffers_and_leaves_step_counters() -> None:
    # Before trainer.test on a GPU: fit's teardown left the optimizer's state on the CPU.
    model = torch.nn.Linear(3, 2)
    sgdo, adam = (
        SGDO(model.parameters(), lr=0.1, overshoot=2.0),
        torch.optim.Adam(model.parameters()),
    )
    model(torch.ones(1, 3)).sum().backward()
    sgdo.step()
    adam.step()
    for opt in (sgdo, adam):
        state_to_device(opt, torch.device("meta"))
    for p in model.parameters():
        assert sgdo.state[p]["momentum_buffer"].device.type == "meta"
        assert adam.state[p]["exp_avg"].device.type == "meta"
        assert adam.state[p]["step"].device.type == "cpu"  # where torch's Adam keeps it
