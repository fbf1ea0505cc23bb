"""Data loaders as parallel jobs meet them."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import IO

import pytest

from data.mnist import FashionMNISTDataModule
from tests.fake_data import write_mnist


def test_jobs_extracting_the_same_files_at_once_both_read_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multirun's parallel jobs share the extraction cache: a job that extracts every file
    while another is still writing one leaves both with the files (they once wrote one shared
    temporary name, and the slower job's rename found it gone: VAE-FM's evaluation stopped)."""
    root = write_mnist(tmp_path / "data", "FashionMNIST")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    copy, calls = shutil.copyfileobj, []

    def another_job_meanwhile(src: IO[bytes], dst: IO[bytes]) -> None:
        calls.append(dst)
        if len(calls) == 1:
            FashionMNISTDataModule(root=str(root))._dataset(train=True)
        copy(src, dst)

    monkeypatch.setattr(shutil, "copyfileobj", another_job_meanwhile)
    assert len(FashionMNISTDataModule(root=str(root))._dataset(train=True)) == 120
    assert len(calls) == 5  # the first file twice, the others once
    (cache,) = (tmp_path / "tmp" / "overshoot_data").iterdir()
    assert sorted(p.name for p in (cache / "FashionMNIST" / "raw").iterdir()) == [
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    ]  # no temporary file left
