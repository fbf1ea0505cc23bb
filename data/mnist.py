"""MNIST and Fashion-MNIST from the original idx-gzip files, held as normalized tensors."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torchvision import datasets

from data import MNIST_FILES, mnist_raw, resolve_root
from data.tensors import Split, TensorDataModule


class MNISTDataModule(TensorDataModule):
    """Train 50k / val 10k (fixed split) / test 10k; ``normalize=None`` keeps pixels in [0, 1];
    ``autoencode`` makes the image its own target (VAE). ``val_fraction`` of the 60k training
    images validate (1/6 here; 0.1, i.e. 54k / 6k, at arXiv v1), the same images for every seed.
    """

    dataset_cls: type[datasets.MNIST] = datasets.MNIST
    folder = "MNIST"

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 64,
        seed: int = 0,
        normalize: tuple[float, float] | None = (0.130660, 0.3015041),
        download: bool = False,
        eval_batch_size: int = 1024,
        autoencode: bool = False,
        val_fraction: float = 1 / 6,
    ) -> None:
        super().__init__(root, batch_size, seed, eval_batch_size, download)
        self.normalize = normalize
        self.autoencode = autoencode
        self.val_fraction = val_fraction

    def _dataset(self, train: bool) -> datasets.MNIST:
        root = resolve_root(self.root)
        raw = mnist_raw(root, self.folder, self.download)
        if raw is None:
            return self.dataset_cls(str(root), train=train, download=True)
        # torchvision reads the extracted files; extract into a private cache, never into root.
        key = hashlib.sha1(str(raw).encode()).hexdigest()[:12]
        cache = Path(tempfile.gettempdir()) / "overshoot_data" / key
        dest = cache / self.folder / "raw"
        dest.mkdir(parents=True, exist_ok=True)
        for f in MNIST_FILES:
            target = dest / f.removesuffix(".gz")
            if not target.exists():  # parallel jobs may extract it at once: each its own file
                fd, part = tempfile.mkstemp(dir=dest, prefix=f".{target.name}.")
                with gzip.open(raw / f) as src, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.replace(part, target)
        return self.dataset_cls(str(cache), train=train, download=False)

    def _tensors(self, ds: datasets.MNIST) -> Split:
        x = ds.data.unsqueeze(1).float().div_(255)
        if self.normalize is not None:
            mean, std = self.normalize
            x = (x - mean) / std
        return x, x if self.autoencode else ds.targets.long()

    def load(self) -> tuple[Split, Split, Split]:
        x, y = self._tensors(self._dataset(train=True))
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(42))
        n_val = round(len(x) * self.val_fraction)
        tr, va = order[n_val:], order[:n_val]
        return (x[tr], y[tr]), (x[va], y[va]), self._tensors(self._dataset(train=False))


class FashionMNISTDataModule(MNISTDataModule):
    dataset_cls = datasets.FashionMNIST
    folder = "FashionMNIST"
