"""A LightningDataModule over in-memory tensors, batched by index (no per-item Python work).

The tensors live on the training device (the GPU when training there): a batch is one indexing
kernel, with no host-to-device copy per step.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

Split = tuple[torch.Tensor, torch.Tensor]


class EpochBatches(Sampler[torch.Tensor]):
    """Batches of indices whose order at each epoch depends only on (seed, epoch).

    Shuffled, it draws what ``BatchSampler(RandomSampler(generator seeded once))`` draws epoch
    after epoch (two permutations per epoch; results made before this class pair with those made
    after it), and ``set_epoch`` (called by Lightning before each epoch) replays the generator when
    a run resumes at a later epoch, so a resumed run sees the same batches as an uninterrupted one.
    Under data parallelism (``world`` processes) process ``rank`` takes its slice of each global
    batch, so the ranks together see what one process sees. The order is drawn on the CPU (the
    same order on every device) and moved to ``device``, the data's, once per epoch.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world, self.device = rank, world, torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0  # the epoch the generator's next draws belong to

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle and epoch != self.epoch:
            self.generator.manual_seed(self.seed)
            for _ in range(2 * epoch):
                torch.randperm(self.n, generator=self.generator)
            self.epoch = epoch

    def __iter__(self) -> Iterator[torch.Tensor]:
        # A generator: nothing is drawn until the first batch is asked for, because Lightning
        # creates an epoch's iterator before it calls set_epoch for that epoch.
        if not self.shuffle:
            order = torch.arange(self.n)
        else:
            order = torch.randperm(self.n, generator=self.generator)
            torch.randperm(self.n, generator=self.generator)  # RandomSampler's remainder draw
            self.epoch += 1
        for batch in order.to(self.device).split(self.batch_size):
            yield batch.tensor_split(self.world)[self.rank] if self.world > 1 else batch

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


class MemberBatches(Sampler[torch.Tensor]):
    """One batch of indices per member at every step (members × batch): member i draws what
    ``EpochBatches`` with seed ``seeds[i]`` draws, so it sees its own run's batches."""

    def __init__(self, members: list[EpochBatches]) -> None:
        self.members = members

    def set_epoch(self, epoch: int) -> None:
        for m in self.members:
            m.set_epoch(epoch)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for batches in zip(*self.members, strict=True):
            yield torch.stack(batches)

    def __len__(self) -> int:
        return len(self.members[0])


class TensorDataModule(pl.LightningDataModule):
    """Subclasses implement ``load()`` returning (train, val, test) tensor pairs.

    Evaluation uses larger batches (``eval_batch_size``): it has no gradients to keep. The
    training order depends only on ``seed``, so runs with the same seed see the same batches
    whatever the optimizer (seeds pair across optimizers). Under DDP, ``batch_size`` stays the
    global batch: each process trains on its slice, and evaluates on the whole split. Once
    ``members`` is set (the seeds of vectorized members), a training batch stacks each member's
    own batch (members × batch × ...).
    """

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 64,
        seed: int = 0,
        eval_batch_size: int = 1024,
        download: bool = False,
    ) -> None:
        super().__init__()
        self.members: list[int] | None = None
        self.root = root
        self.download = download  # online users: fetch missing files (where a source exists)
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
        if self.trainer is not None:  # Lightning calls setup once the device is known
            self.move_to(self.trainer.strategy.root_device)

    def move_to(self, device: torch.device | str) -> None:
        """Hold every split on ``device``; batches are then drawn there."""
        self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}

    def _loader(self, split: str, shuffle: bool) -> DataLoader[tuple[torch.Tensor, ...]]:
        data = TensorDataset(*self.splits[split])
        size = self.batch_size if shuffle else self.eval_batch_size
        rank, world = 0, 1
        if shuffle and self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        device = self.splits[split][0].device
        if shuffle and self.members:
            each = [EpochBatches(len(data), size, True, s, device=device) for s in self.members]
            return DataLoader(data, sampler=MemberBatches(each), batch_size=None)
        batches = EpochBatches(len(data), size, shuffle, self.seed, rank, world, device)
        return DataLoader(data, sampler=batches, batch_size=None)

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
