"""Text tasks: tiny Shakespeare (next token) and GLUE QQP/SST-2/MNLI (classes), as token tensors.

Tokens: GPT-2 BPE when its tokenizer files are available (local Hugging Face cache, or online
with ``download``); otherwise a fallback that needs nothing — characters for Shakespeare, UTF-8
bytes (ids 1..256) for GLUE — and a note on stderr saying which one is used.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from data import glue_files, resolve_root, shakespeare_file
from data.tensors import Split, TensorDataModule

GPT2_EOS = 50256
BINARY = {"0": 0, "1": 1}


def gpt2_tokenizer(download: bool) -> Any | None:
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained("gpt2", local_files_only=not download)
    except (OSError, ValueError):
        return None


class ShakespeareDataModule(TensorDataModule):
    """Non-overlapping blocks of ``block_size`` tokens; the target is the next token. 90/5/5."""

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 16,
        seed: int = 0,
        block_size: int = 256,
        tokenizer: str = "auto",
        download: bool = False,
        eval_batch_size: int = 64,
    ) -> None:
        super().__init__(root, batch_size, seed, eval_batch_size, download)
        if tokenizer not in ("auto", "gpt2", "char"):
            raise ValueError(f"unknown tokenizer {tokenizer!r}; valid: auto, gpt2, char")
        self.block_size = block_size
        self.tokenizer = tokenizer

    def encode(self, text: str) -> torch.Tensor:
        tok = gpt2_tokenizer(self.download) if self.tokenizer != "char" else None
        if tok is not None:
            return torch.tensor(tok(text)["input_ids"], dtype=torch.long)
        if self.tokenizer == "gpt2":
            raise ValueError("tokenizer gpt2 requested but its files are unavailable offline")
        print("shakespeare: GPT-2 tokenizer unavailable, using characters", file=sys.stderr)
        vocab = {c: i for i, c in enumerate(sorted(set(text)))}
        return torch.tensor([vocab[c] for c in text], dtype=torch.long)

    def load(self) -> tuple[Split, Split, Split]:
        path = shakespeare_file(resolve_root(self.root))
        ids = self.encode(path.read_text())
        n = (len(ids) - 1) // self.block_size
        x = ids[: n * self.block_size].view(n, self.block_size)
        y = ids[1 : n * self.block_size + 1].view(n, self.block_size)
        a, b = int(n * 0.9), int(n * 0.95)
        return (x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:])


@dataclass(frozen=True)
class GLUETask:
    """Which columns of a GLUE task hold its text and label (its files: data.glue_files)."""

    text: tuple[str, ...]
    label: str
    labels: dict[str, int]


GLUE = {
    "qqp": GLUETask(("question1", "question2"), "is_duplicate", BINARY),
    "sst2": GLUETask(("sentence",), "label", BINARY),
    "mnli": GLUETask(
        ("sentence1", "sentence2"),
        "gold_label",
        {"entailment": 0, "neutral": 1, "contradiction": 2},
    ),
}


class GLUEDataModule(TensorDataModule):
    """A GLUE classification task from its TSVs: train.tsv for training, the labelled dev file
    split in half for validation and test (GLUE's test.tsv has no labels), or with
    ``split_dev=False`` the whole dev file as both (arXiv v1 had no validation and tested on
    dev). Texts of a pair are joined by GPT-2's eos token, or with ``joiner`` into one text
    before tokenizing (v1: two spaces), cut at ``max_length`` tokens and right-padded with eos
    to the longest row of their split: the classifier is causal and reads the last real token,
    so padding further changes nothing but the cost. Rows whose label is not one of the task's
    (MNLI's "-") are left out."""

    def __init__(
        self,
        task: str = "qqp",
        root: str | None = None,
        batch_size: int = 64,
        seed: int = 0,
        max_length: int = 128,
        download: bool = False,
        eval_batch_size: int = 256,
        joiner: str | None = None,
        split_dev: bool = True,
    ) -> None:
        super().__init__(root, batch_size, seed, eval_batch_size, download)
        if task not in GLUE:
            raise ValueError(f"unknown GLUE task {task!r}; valid: {', '.join(GLUE)}")
        self.task = GLUE[task]
        self.task_name = task
        self.max_length = max_length
        self.joiner = joiner
        self.split_dev = split_dev

    def rows(self, path: Path) -> tuple[list[tuple[str, ...]], list[int]]:
        texts, labels = [], []
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                label = self.task.labels.get(row.get(self.task.label) or "")
                if label is not None:
                    texts.append(tuple(row[column] for column in self.task.text))
                    labels.append(label)
        return texts, labels

    def encode(self, texts: list[tuple[str, ...]], tok: Any | None) -> torch.Tensor:
        def ids_of(text: str) -> list[int]:
            return tok(text)["input_ids"] if tok is not None else [b + 1 for b in text.encode()]

        rows = []
        for parts in texts:
            if self.joiner is not None:
                ids = ids_of(self.joiner.join(parts))
            else:
                ids = ids_of(parts[0])
                for text in parts[1:]:
                    ids += [GPT2_EOS, *ids_of(text)]
            rows.append(ids[: self.max_length])
        out = torch.full((len(rows), max(map(len, rows), default=0)), GPT2_EOS, dtype=torch.long)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def load(self) -> tuple[Split, Split, Split]:
        train, dev = glue_files(resolve_root(self.root), self.task_name)
        tok = gpt2_tokenizer(self.download)
        if tok is None:
            print(
                f"{self.task_name}: GPT-2 tokenizer unavailable, using UTF-8 bytes", file=sys.stderr
            )
        x_tr, y_tr = self.rows(train)
        x_dev, y_dev = self.rows(dev)
        train_split = (self.encode(x_tr, tok), torch.tensor(y_tr))
        if not self.split_dev:
            whole = (self.encode(x_dev, tok), torch.tensor(y_dev))
            return train_split, whole, whole
        half = len(x_dev) // 2
        return (
            train_split,
            (self.encode(x_dev[:half], tok), torch.tensor(y_dev[:half])),
            (self.encode(x_dev[half:], tok), torch.tensor(y_dev[half:])),
        )
