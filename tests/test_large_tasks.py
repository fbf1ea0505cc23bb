"""The large tasks (ResNet, GPT, GPT-2 + LoRA) run end to end on small files in the real formats."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.fake_data import write_cifar, write_mnli, write_qqp, write_shakespeare, write_sst2
from tests.launch import config
from trainers.results import run_folder
from trainers.train import train

BATCH_4 = ["task.sgd.batch_size=4", "task.adam.batch_size=4"]
SMALL_GPT = ["task.model.n_layer=1", "task.model.n_embd=48", "task.model.n_head=2"]
SHORT_BLOCKS = ["task.model.block_size=32", "task.data.block_size=32"]
# The LoRA classifier takes its size only as keyword defaults, so they are added with "+".
SMALL_GLUE = [f"+{key}" for key in SMALL_GPT] + ["task.data.max_length=16", *BATCH_4]
CASES = {
    "resnet18_cifar100": ["task.sgd.batch_size=8", "task.adam.batch_size=8"],
    "resnet50_cifar100": BATCH_4,
    "gpt_shakespeare": [*SMALL_GPT, *SHORT_BLOCKS, *BATCH_4],
    "gpt_tiny_shakespeare": [*SMALL_GPT, *SHORT_BLOCKS],
    "gpt_char_shakespeare": [],  # CPU-sized already: its own settings
    **{task: SMALL_GLUE for task in ("gpt_hf_qqp", "gpt_hf_sst", "gpt_hf_mnli")},
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_cifar(root, 100, n_per_batch=24, n_test=8)
    write_shakespeare(root, chars=6000)
    write_qqp(root, n=24)
    write_sst2(root, n=24)
    write_mnli(root, n=24)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(CASES))
@pytest.mark.parametrize("optimizer", ["sgdo", "adamo"])
def test_large_task_trains_two_steps_and_writes_results(
    task: str, optimizer: str, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    overrides = [f"task={task}", f"optimizer={optimizer}", "max_steps=2", f"data.root={root}"]
    cfg = config(tmp_path, [*overrides, *CASES[task]], experiment="large")
    summary = train(cfg)
    assert summary["status"] == "finished", summary
    folder = run_folder(cfg)
    assert json.loads((folder / "meta.json").read_text())["steps"] == 2
    steps = pd.read_csv(folder / "steps.csv")
    assert list(steps["step"]) == [1, 2] and steps["loss_base"].notna().all()
    assert "test" in set(pd.read_csv(folder / "evals.csv")["stage"])
