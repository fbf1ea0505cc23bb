"""Text tasks: tiny Shakespeare (next token) and GLUE QQP (question pairs), as token tensors.

Tokens: GPT-2 BPE when its tokenizer files are available (local Hugging Face cache, or online
with ``download``); otherwise a fallback that needs nothing — characters for Shakespeare, UTF-8
bytes (ids 1..256) for QQP — and a note on stderr saying which one is used.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import torch

from data.root import find_first, resolve_root
from data.tensors import Split, TensorDataModule

GPT2_EOS = 50256


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
        path = find_first(
            resolve_root(self.root),
            ["tinyshakespeare/input.txt"],
            "get input.txt from karpathy/char-rnn data/tinyshakespeare",
        )
        ids = self.encode(path.read_text())
        n = (len(ids) - 1) // self.block_size
        x = ids[: n * self.block_size].view(n, self.block_size)
        y = ids[1 : n * self.block_size + 1].view(n, self.block_size)
        a, b = int(n * 0.9), int(n * 0.95)
        return (x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:])


class QQPDataModule(TensorDataModule):
    """GLUE QQP: train.tsv for training, dev.tsv split in half for validation and test (GLUE's
    test.tsv has no labels). Pairs are encoded as ``question1 <eos> question2``, padded with
    GPT-2's eos id to ``max_length``."""

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 64,
        seed: int = 0,
        max_length: int = 128,
        download: bool = False,
        eval_batch_size: int = 256,
    ) -> None:
        super().__init__(root, batch_size, seed, eval_batch_size, download)
        self.max_length = max_length

    def _rows(self, path: Path) -> tuple[list[tuple[str, str]], list[int]]:
        pairs, labels = [], []
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if row.get("is_duplicate") in ("0", "1"):
                    pairs.append((row["question1"], row["question2"]))
                    labels.append(int(row["is_duplicate"]))
        return pairs, labels

    def _encode(self, pairs: list[tuple[str, str]]) -> torch.Tensor:
        tok = gpt2_tokenizer(self.download)
        out = torch.full((len(pairs), self.max_length), GPT2_EOS, dtype=torch.long)
        for i, (q1, q2) in enumerate(pairs):
            if tok is not None:
                ids = [*tok(q1)["input_ids"], GPT2_EOS, *tok(q2)["input_ids"]]
            else:
                ids = [b + 1 for b in q1.encode()] + [GPT2_EOS] + [b + 1 for b in q2.encode()]
            ids = ids[: self.max_length]
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def load(self) -> tuple[Split, Split, Split]:
        root = resolve_root(self.root)
        how = "download GLUE QQP (e.g. the GLUE benchmark's QQP.zip) and unpack it under glue_qqp/"
        train = find_first(root, ["glue_qqp/train.tsv", "glue_qqp/QQP/train.tsv"], how)
        dev = find_first(root, [str(train.relative_to(root).with_name("dev.tsv"))], how)
        if gpt2_tokenizer(self.download) is None:
            print("qqp: GPT-2 tokenizer unavailable, using UTF-8 bytes", file=sys.stderr)
        x_tr, y_tr = self._rows(train)
        x_dev, y_dev = self._rows(dev)
        half = len(x_dev) // 2
        return (
            (self._encode(x_tr), torch.tensor(y_tr)),
            (self._encode(x_dev[:half]), torch.tensor(y_dev[:half])),
            (self._encode(x_dev[half:]), torch.tensor(y_dev[half:])),
        )
