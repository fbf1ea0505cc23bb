"""CIFAR-10/100 from the original python pickles, held as normalized tensors.

Augmentation (ResNet task) runs on whole batches on the training device after transfer, so the
hot loop has no per-image Python: random crop with 4-pixel padding, horizontal flip, and
per-image brightness/contrast/saturation jitter and a small rotation (one affine warp).
Evaluation never augments.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from data import CIFAR_LAYOUT, cifar_folder, resolve_root
from data.tensors import Split, TensorDataModule

MEAN_STD = {
    10: ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    100: ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def read_batches(folder: Path, names: list[str], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def augment(x: torch.Tensor, jitter: float = 0.4, degrees: float = 5.0) -> torch.Tensor:
    """Per-image random crop (pad 4), h-flip, colour jitter and rotation, batched on x's device."""
    n = len(x)
    dev = x.device
    scale = 1 + (torch.rand(n, 3, 1, 1, 1, device=dev) * 2 - 1) * jitter
    gray = x.mean(dim=1, keepdim=True)
    x = x * scale[:, 0]  # brightness
    x = (x - gray.mean(dim=(2, 3), keepdim=True)) * scale[:, 1] + gray.mean(
        dim=(2, 3), keepdim=True
    )
    x = (x - gray) * scale[:, 2] + gray  # saturation
    angle = (torch.rand(n, device=dev) * 2 - 1) * math.radians(degrees)
    shift = torch.randint(-4, 5, (n, 2), device=dev).to(x.dtype) * (2 / 32)
    flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0).to(x.dtype)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, shift[:, 0]], 1),
            torch.stack([sin * flip, cos, shift[:, 1]], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


class CIFARDataModule(TensorDataModule):
    """CIFAR-10 or -100: train 40k / val 10k (fixed split) / test 10k; ``augment`` for training.

    ``val_fraction=None`` trains on all 50k and validates on the test split (arXiv v1).
    ``train_batches=n`` reads the first n training batches alone and no test batch (a subset
    such as ../shared/data's 4,000 images): a fixed tenth of them is the test split.
    """

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 128,
        seed: int = 0,
        classes: int = 10,
        augment: bool = False,
        download: bool = False,
        eval_batch_size: int = 1024,
        val_fraction: float | None = 0.2,
        train_batches: int | None = None,
    ) -> None:
        super().__init__(root, batch_size, seed, eval_batch_size, download)
        self.val_fraction = val_fraction
        self.train_batches = train_batches
        if classes not in CIFAR_LAYOUT:
            raise ValueError(f"unknown CIFAR classes {classes}; valid: 10, 100")
        self.classes = classes
        self.augment = augment

    def _folder(self) -> Path:
        root = resolve_root(self.root)
        folder = cifar_folder(root, self.classes, self.download, self.train_batches)
        if folder is None:
            from torchvision import datasets

            cls = datasets.CIFAR10 if self.classes == 10 else datasets.CIFAR100
            cls(str(root), download=True)
            folder = root / CIFAR_LAYOUT[self.classes][0]
        return folder

    def load(self) -> tuple[Split, Split, Split]:
        _, train, test, key = CIFAR_LAYOUT[self.classes]
        folder = self._folder()
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in MEAN_STD[self.classes])

        def tensors(names: list[str]) -> Split:
            x, y = read_batches(folder, names, key)
            return (torch.from_numpy(x).float().div_(255) - mean) / std, torch.from_numpy(y)

        if self.train_batches is None:
            x, y = tensors(train)
            test_split = tensors([test])
        else:  # no test batch: a fixed tenth of the subset is the test split
            x, y = tensors(train[: self.train_batches])
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(42))
            held, kept = order[: round(len(x) * 0.1)], order[round(len(x) * 0.1) :]
            test_split, x, y = (x[held], y[held]), x[kept], y[kept]
        if self.val_fraction is None:
            return (x, y), test_split, test_split
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(42))
        n_val = round(len(x) * self.val_fraction)  # the same images for every seed
        tr, va = order[n_val:], order[:n_val]
        return (x[tr], y[tr]), (x[va], y[va]), test_split

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.augment and self.trainer is not None and self.trainer.training:
            x, y = batch
            mean, std = (
                torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in MEAN_STD[self.classes]
            )
            images = x.flatten(0, -4)  # vectorized members: members × batch images
            jittered = (augment(images * std + mean) - mean) / std  # jitter acts on [0, 1] pixels
            return jittered.view_as(x), y
        return batch
