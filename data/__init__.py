"""Where datasets live: config ``data.root``, else env ``OVERSHOOT_DATA``, else ``./data_cache``.

Each dataset's files are located here, with the standard library only, so a run checks that its
data is present (``check_present``) in a fraction of a second, before torch or Lightning load;
the datamodules read their files from the same functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
# classes -> (folder, training batches, test batch, label key)
CIFAR_LAYOUT = {
    10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels"),
    100: ("cifar-100-python", ["train"], "test", b"fine_labels"),
}
# GLUE task -> (folder under the root, GLUE zip name (it unpacks to folder/<name>/), dev file)
GLUE_FILES = {
    "qqp": ("glue_qqp", "QQP", "dev.tsv"),
    "sst2": ("glue_sst2", "SST-2", "dev.tsv"),
    "mnli": ("glue_mnli", "MNLI", "dev_matched.tsv"),
}
ONLINE = "set data.root=DIR or OVERSHOOT_DATA=DIR to the folder that holds it"


class DataNotFoundError(FileNotFoundError):
    """A dataset file is missing and cannot be downloaded; the message says how to supply it."""


def resolve_root(root: str | None) -> Path:
    value = root or os.environ.get("OVERSHOOT_DATA") or "data_cache"
    return Path(value).expanduser().resolve()


def find_first(root: Path, candidates: list[str], how: str) -> Path:
    """Return the first existing ``root/candidate``, or raise naming what was looked for."""
    for rel in candidates:
        if (root / rel).is_file():
            return root / rel
    raise DataNotFoundError(f"missing data file {root / candidates[0]}; {how} ({ONLINE})")


def housing_file(root: Path) -> Path:
    return find_first(
        root,
        [
            "california_housing/CaliforniaHousing/cal_housing.data",
            "california_housing/cal_housing.data",
        ],
        "get cal_housing.tgz from StatLib (or sklearn.datasets.fetch_california_housing) "
        "and unpack it under california_housing/",
    )


def energy_file(root: Path) -> Path:
    return find_first(
        root,
        ["energy_efficiency/energy_efficiency_data.csv"],
        "download the UCI energy efficiency data as CSV with columns X1..X8,Y1,Y2",
    )


def shakespeare_file(root: Path) -> Path:
    return find_first(
        root,
        ["tinyshakespeare/input.txt"],
        "get input.txt from karpathy/char-rnn data/tinyshakespeare",
    )


def glue_files(root: Path, task: str) -> tuple[Path, Path]:
    """(train.tsv, the labelled dev file) of a GLUE task."""
    if task not in GLUE_FILES:
        raise ValueError(f"unknown GLUE task {task!r}; valid: {', '.join(GLUE_FILES)}")
    folder, zip_name, dev = GLUE_FILES[task]
    how = (
        f"download GLUE {zip_name} (the GLUE benchmark's {zip_name}.zip) "
        f"and unpack it under {folder}/"
    )
    train = find_first(root, [f"{folder}/train.tsv", f"{folder}/{zip_name}/train.tsv"], how)
    return train, find_first(root, [str(train.relative_to(root).with_name(dev))], how)


def mnist_raw(root: Path, folder: str, download: bool) -> Path | None:
    """The folder of the four original .gz files; None where they are absent and may be
    downloaded."""
    raw = root / folder / "raw"
    if all((raw / f).is_file() for f in MNIST_FILES):
        return raw
    if download:
        return None
    raise DataNotFoundError(
        f"missing data file {raw / MNIST_FILES[0]}; put the four original {folder} .gz files "
        f"in {raw} or pass data.download=true when online ({ONLINE})"
    )


def cifar_folder(
    root: Path, classes: int, download: bool, train_batches: int | None = None
) -> Path | None:
    """The folder of CIFAR's python batches (the first ``train_batches`` and no test batch, for
    a subset); None where they are absent and may be downloaded."""
    if classes not in CIFAR_LAYOUT:
        raise ValueError(f"unknown CIFAR classes {classes}; valid: 10, 100")
    folder, train, test, _ = CIFAR_LAYOUT[classes]
    names = [*train, test] if train_batches is None else train[:train_batches]
    for name in names:
        if not (root / folder / name).is_file():
            if download:
                return None
            raise DataNotFoundError(
                f"missing data file {root / folder / name}; unpack the CIFAR-{classes} python "
                f"version (cifar-{classes}-python.tar.gz) under {root} or pass "
                f"data.download=true when online ({ONLINE})"
            )
    return root / folder


# Datamodule class name -> what it reads, given (root, download, the data config).
LOCATE: dict[str, Callable[[Path, bool, Mapping[str, Any]], object]] = {
    "HousingDataModule": lambda root, download, kw: housing_file(root),
    "EnergyDataModule": lambda root, download, kw: energy_file(root),
    "ShakespeareDataModule": lambda root, download, kw: shakespeare_file(root),
    "GLUEDataModule": lambda root, download, kw: glue_files(root, kw.get("task", "qqp")),
    "MNISTDataModule": lambda root, download, kw: mnist_raw(root, "MNIST", download),
    "FashionMNISTDataModule": lambda root, download, kw: mnist_raw(root, "FashionMNIST", download),
    "CIFARDataModule": lambda root, download, kw: cifar_folder(
        root, int(kw.get("classes", 10)), download, kw.get("train_batches")
    ),
}


def check_present(data: Mapping[str, Any], root: str | None, download: bool) -> None:
    """Raise DataNotFoundError if the files the datamodule ``data`` (a ``_target_`` config)
    reads are missing; datamodules not listed in LOCATE report at load."""
    locate = LOCATE.get(str(data.get("_target_", "")).rsplit(".", 1)[-1])
    if locate is not None:
        locate(resolve_root(root), download, data)
