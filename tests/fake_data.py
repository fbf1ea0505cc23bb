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


def write_cifar(root: Path, classes: int = 10, n_per_batch: int = 20, n_test: int = 20) -> Path:
    """CIFAR python-version pickles (bytes keys, uint8 rows of 3072) in the original layout."""
    import pickle

    rng = np.random.default_rng(3)
    if classes == 10:
        folder, names, test, key = (
            root / "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            "test_batch",
            b"labels",
        )
    else:
        folder, names, test, key = root / "cifar-100-python", ["train"], "test", b"fine_labels"
    folder.mkdir(parents=True)
    for name, n in [*((nm, n_per_batch) for nm in names), (test, n_test)]:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            key: rng.integers(0, classes, n).tolist(),
            b"batch_label": name.encode(),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    return root


def write_shakespeare(root: Path, chars: int = 20000) -> Path:
    folder = root / "tinyshakespeare"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(4)
    words = ["thou", "art", "the", "king", "ROMEO:", "JULIET:", "\n", "love", "my", "lord,"]
    text = " ".join(rng.choice(words, chars // 4))[:chars]
    (folder / "input.txt").write_text(text)
    return root


def write_qqp(root: Path, n: int = 40) -> Path:
    """GLUE QQP train/dev TSVs (CRLF, header id qid1 qid2 question1 question2 is_duplicate)."""
    folder = root / "glue_qqp"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for name in ("train", "dev"):
        lines = ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"]
        for i in range(n):
            q = f"How do I learn {rng.choice(['python', 'torch', 'math'])} fast?"
            lines.append(f'{i}\t{2 * i}\t{2 * i + 1}\t{q}\tWhat is "the" best way?\t{i % 2}')
        (folder / f"{name}.tsv").write_text("\r\n".join(lines) + "\r\n")
    return root


def write_sst2(root: Path, n: int = 40) -> Path:
    """GLUE SST-2 train/dev TSVs (header sentence label)."""
    folder = root / "glue_sst2" / "SST-2"  # as GLUE's SST-2.zip unpacks
    folder.mkdir(parents=True)
    for name in ("train", "dev"):
        rows = [f"a {'fine' if i % 2 else 'dull'} film , number {i} \t{i % 2}" for i in range(n)]
        (folder / f"{name}.tsv").write_text("\n".join(["sentence\tlabel", *rows]) + "\n")
    return root


MNLI_LABELS = ["entailment", "neutral", "contradiction"]


def write_mnli(root: Path, n: int = 42) -> Path:
    """GLUE MNLI train.tsv and dev_matched.tsv with GLUE's columns; one dev row is labelled "-"
    (no gold label), which a loader must leave out."""
    folder = root / "glue_mnli"
    folder.mkdir(parents=True)
    parses = "\t".join(["(x)"] * 4)
    for name, votes in (("train", 1), ("dev_matched", 5)):
        labels = "\t".join(f"label{k}" for k in range(1, votes + 1))
        header = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
        header += "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\t"
        header += f"sentence2\t{labels}\tgold_label"
        lines = [header]
        for i in range(n):
            gold = MNLI_LABELS[i % 3] if not (name == "dev_matched" and i == 0) else "-"
            vote = "\t".join([MNLI_LABELS[i % 3]] * votes)
            lines.append(
                f"{i}\t{i}\t{i}e\tfiction\t{parses}\tThe cat sat {i} times.\t"
                f'A "cat" sat.\t{vote}\t{gold}'
            )
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return root
