"""Small datasets written in the real on-disk formats, for loader and harness tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def _idx(path: Path, array: np.ndarray) -> None:
    magic = {1: 0x801, 3: 0x803}[array.ndim]
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 120, n_test: int = 30) -> Path:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        _idx(raw / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    return root


def write_housing(root: Path, n: int = 200) -> Path:
    """cal_housing.data without header, as in StatLib's cal_housing.tgz (CRLF)."""
    folder = root / "california_housing" / "CaliforniaHousing"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    cols = [
        rng.uniform(-124, -114, n),
        rng.uniform(32, 42, n),
        rng.integers(1, 52, n),
        rng.integers(100, 5000, n),
        rng.integers(20, 1000, n),
        rng.integers(50, 3000, n),
        rng.integers(20, 1000, n),
        rng.uniform(0.5, 15, n),
        rng.uniform(15000, 500001, n),
    ]
    rows = ["," + ",".join(f"{c:.6f}" for c in row) for row in np.stack(cols, 1)]
    (folder / "cal_housing.data").write_text("\r\n".join(r[1:] for r in rows))
    return root


def write_energy(root: Path, n: int = 100) -> Path:
    folder = root / "energy_efficiency"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    data = rng.uniform(0, 1, (n, 10))
    header = ",".join([f"X{i}" for i in range(1, 9)] + ["Y1", "Y2"])
    lines = [header] + [",".join(f"{v:.5f}" for v in row) for row in data]
    (folder / "energy_efficiency_data.csv").write_text("\n".join(lines) + "\n")
    return root
