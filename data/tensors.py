"""A LightningDataModule over in-memory tensors, batched by index (no per-item Python work)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

Split = tuple[torch.Tensor, torch.Tensor]


class TensorDataModule(pl.LightningDataModule):
    """Subclasses implement ``load()`` returning (train, val, test) tensor pairs.

    Evaluation uses larger batches (``eval_batch_size``): it has no gradients to keep. The
    training order depends only on ``seed``, so runs with the same seed see the same batches
    whatever the optimizer (seeds pair across optimizers).
    """

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 64,
        seed: int = 0,
        eval_batch_size: int = 1024,
    ) -> None:
        super().__init__()
        self.root = root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.splits: dict[str, Split] = {}

    def load(self) -> tuple[Split, Split, Split]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            train, val, test = self.load()
            self.splits = {"train": train, "val": val, "test": test}

    def _loader(self, split: str, shuffle: bool) -> DataLoader[tuple[torch.Tensor, ...]]:
        data = TensorDataset(*self.splits[split])
        order = (
            RandomSampler(data, generator=torch.Generator().manual_seed(self.seed))
            if shuffle
            else SequentialSampler(data)
        )
        size = self.batch_size if shuffle else self.eval_batch_size
        return DataLoader(data, sampler=BatchSampler(order, size, drop_last=False), batch_size=None)

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[tuple[torch.Tensor, ...]]:
        return self._loader("test", shuffle=False)

    def batches_per_epoch(self) -> int:
        self.setup()
        n = len(self.splits["train"][0])
        return -(-n // self.batch_size)
