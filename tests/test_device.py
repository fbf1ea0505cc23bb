"""Where a run computes: the data on the training device."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from data.tensors import Split, TensorDataModule


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
