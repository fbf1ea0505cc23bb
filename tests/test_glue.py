"""GLUE loaders (QQP, SST-2, MNLI) on files in GLUE's own TSV layouts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import data.text
from data import DataNotFoundError
from data.text import GPT2_EOS, GLUEDataModule
from models.gpt import GPT2LoRAClassifier
from tests.fake_data import MNLI_LABELS, write_mnli, write_sst2
from trainers import cli

SAMPLE = Path(os.environ.get("OVERSHOOT_DATA", "/nonexistent")) / "glue_qqp" / "sample_head9"


@pytest.fixture(autouse=True)
def byte_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline fallback (UTF-8 bytes + 1), so the expected ids are known here."""
    monkeypatch.setattr(data.text, "gpt2_tokenizer", lambda download: None)


def byte_ids(text: str) -> list[int]:
    return [b + 1 for b in text.encode()]


def loaded(task: str, root: Path, max_length: int = 64) -> GLUEDataModule:
    module = GLUEDataModule(task, root=str(root), max_length=max_length)
    module.setup()
    return module


def test_qqp_reads_the_real_sample_and_joins_pairs_with_eos(tmp_path: Path) -> None:
    if not SAMPLE.is_dir():
        pytest.skip("the real QQP sample needs OVERSHOOT_DATA (CI sets it to ../shared/data)")
    shutil.copytree(SAMPLE, tmp_path / "glue_qqp")
    train = pd.read_csv(SAMPLE / "train.tsv", sep="\t", quoting=3, dtype=str)
    dev = pd.read_csv(SAMPLE / "dev.tsv", sep="\t", quoting=3, dtype=str)
    module = loaded("qqp", tmp_path, max_length=512)
    x, y = module.splits["train"]
    assert y.tolist() == train["is_duplicate"].astype(int).tolist()
    first = [*byte_ids(train["question1"][0]), GPT2_EOS, *byte_ids(train["question2"][0])]
    assert x[0, : len(first)].tolist() == first
    assert (x[0, len(first) :] == GPT2_EOS).all()
    half = len(dev) // 2
    assert module.splits["val"][1].tolist() == dev["is_duplicate"][:half].astype(int).tolist()
    assert module.splits["test"][1].tolist() == dev["is_duplicate"][half:].astype(int).tolist()


def test_qqp_as_v1_read_it_one_text_per_pair_and_the_whole_dev_file_tests(tmp_path: Path) -> None:
    """custom_datasets.create_qqp at b3ebff9: "question1  question2" tokenized as one text,
    padded to the longest row, no validation split, all of dev.tsv as the test set."""
    if not SAMPLE.is_dir():
        pytest.skip("the real QQP sample needs OVERSHOOT_DATA (CI sets it to ../shared/data)")
    shutil.copytree(SAMPLE, tmp_path / "glue_qqp")
    train = pd.read_csv(SAMPLE / "train.tsv", sep="\t", quoting=3, dtype=str)
    dev = pd.read_csv(SAMPLE / "dev.tsv", sep="\t", quoting=3, dtype=str)
    module = GLUEDataModule("qqp", root=str(tmp_path), max_length=512, joiner="  ", split_dev=False)
    module.setup()
    x, _ = module.splits["train"]
    texts = [
        byte_ids(f"{a}  {b}") for a, b in zip(train["question1"], train["question2"], strict=True)
    ]
    assert x.shape == (len(texts), max(map(len, texts)))  # the longest row, not 512
    assert x[0, : len(texts[0])].tolist() == texts[0]
    assert (x[0, len(texts[0]) :] == GPT2_EOS).all()
    assert module.splits["val"] is module.splits["test"]
    assert module.splits["test"][1].tolist() == dev["is_duplicate"].astype(int).tolist()
    cut = GLUEDataModule("qqp", root=str(tmp_path), max_length=16, joiner="  ", split_dev=False)
    cut.setup()
    assert cut.splits["train"][0].tolist() == [t[:16] for t in texts]


def test_padding_to_the_longest_row_changes_no_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Causal attention and the last real token's logits: extra right padding is inert, and
    the model cuts a batch to its longest row before running."""
    torch.manual_seed(0)
    model = GPT2LoRAClassifier(pretrained=None, n_layer=1, n_head=2, n_embd=8).eval()
    rows = torch.tensor([[5, GPT2_EOS, 7, GPT2_EOS], [3, 4, 6, 8]])
    padded = torch.cat([rows, torch.full((2, 5), GPT2_EOS)], dim=1)
    widths: list[int] = []
    net = model.net.forward

    def recording(**kwargs: Any) -> Any:
        widths.append(kwargs["input_ids"].shape[1])
        return net(**kwargs)

    monkeypatch.setattr(model.net, "forward", recording)
    with torch.no_grad():
        alone = [model(rows[i : i + 1]) for i in range(2)]  # each cut to its own length
        batched = model(padded)  # cut to the longest row
        full = net(input_ids=padded, attention_mask=model.attention_mask(padded)).logits
    assert widths == [3, 4, 4]  # row 0 ends at its 7: the eos after it is padding
    for i, row in enumerate(alone):  # the other row's length, and the padding, change nothing
        torch.testing.assert_close(batched[i], row[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(batched, full, rtol=1e-6, atol=1e-6)  # the cut changes nothing
    assert not torch.allclose(batched[0], batched[1], rtol=1e-3, atol=1e-3)


def test_lora_is_scaled_as_the_reference_configured_it() -> None:
    """peft's default alpha 8 over r = 6 (the reference never set alpha), on c_attn only."""
    model = GPT2LoRAClassifier(pretrained=None, n_layer=2, n_head=2, n_embd=8)
    adapted = {n: m for n, m in model.net.named_modules() if hasattr(m, "lora_A")}
    assert sorted(n.removeprefix("base_model.model.transformer.") for n in adapted) == [
        "h.0.attn.c_attn",
        "h.1.attn.c_attn",
    ]
    assert {m.scaling["default"] for m in adapted.values()} == {8 / 6}


def test_sst2_single_sentences_from_the_zip_layout(tmp_path: Path) -> None:
    write_sst2(tmp_path, n=10)
    module = loaded("sst2", tmp_path, max_length=8)
    x, y = module.splits["train"]
    assert y.tolist() == [i % 2 for i in range(10)]
    assert x.shape == (10, 8) and x[0].tolist() == byte_ids("a dull film , number 0 ")[:8]
    assert len(module.splits["val"][1]) == 5 and len(module.splits["test"][1]) == 5


def test_mnli_maps_gold_labels_and_leaves_out_unlabelled_rows(tmp_path: Path) -> None:
    write_mnli(tmp_path, n=9)
    module = loaded("mnli", tmp_path)
    x, y = module.splits["train"]
    assert y.tolist() == [i % 3 for i in range(9)] and MNLI_LABELS[y[1]] == "neutral"
    text = [*byte_ids("The cat sat 0 times."), GPT2_EOS, *byte_ids('A "cat" sat.')]
    assert x[0, : len(text)].tolist() == text
    dev = torch.cat([module.splits["val"][1], module.splits["test"][1]])
    assert dev.tolist() == [i % 3 for i in range(1, 9)]  # dev row 0 is labelled "-"


def test_missing_file_names_it_and_the_zip_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"glue_mnli/train.tsv; download GLUE MNLI"):
        loaded("mnli", tmp_path)


def test_unknown_task_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown GLUE task 'cola'; valid: qqp, sst2, mnli"):
        GLUEDataModule("cola")


def test_reference_glue_names_select_the_tasks() -> None:

    for dataset, task in (("qqp", "gpt_hf_qqp"), ("sst", "gpt_hf_sst"), ("mnli", "gpt_hf_mnli")):
        overrides, _ = cli.split_argv(["--model", "gpt_hf", "--dataset", dataset])
        assert f"task={task}" in overrides


def test_pair_classifier_sees_the_separator_and_not_the_padding() -> None:
    """The pad id is also the pair separator (eos): only the right padding is masked."""
    torch.manual_seed(0)
    model = GPT2LoRAClassifier(pretrained=None, n_layer=1, n_head=2, n_embd=8).eval()
    pair = torch.tensor([[5, GPT2_EOS, 7, 9, GPT2_EOS, GPT2_EOS], [3, 4, 6, 8, 2, 1]])
    assert model.attention_mask(pair).tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
    with torch.no_grad():
        out = model(pair)
        shorter = model(pair[:1, :5])  # less padding, same texts
        hidden = model.net(input_ids=pair[:1], attention_mask=torch.tensor([[1, 0, 1, 1, 0, 0]]))
    torch.testing.assert_close(shorter, out[:1])
    assert not torch.allclose(hidden.logits, out[:1])  # the separator is part of the input
