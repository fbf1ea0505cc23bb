"""hparams=paper_v1: the settings of the paper's runs (reference b3ebff9), selectable as a whole."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tests.fake_data import write_housing, write_mnist, write_qqp
from tests.launch import config, main_refuses
from trainers.train import train


def test_mlp_ca_v1_settings_compose_over_the_task(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["task=mlp_housing", "hparams=paper_v1"])
    assert (cfg.task.epochs, cfg.task.cosine, cfg.task.cosine_extra) == (200, True, 64)
    for family in ("sgd", "adam"):
        assert cfg.task[family].lr == 1e-3 and cfg.task[family].batch_size == 64
        assert cfg.task[family].weight_decay == 0.0
    assert (cfg.task.adam.beta1, cfg.task.sgd.momentum) == (0.9, 0.9)
    assert cfg.task.data.val_fraction is None
    current = config(tmp_path, ["task=mlp_housing"])
    assert current.task.sgd.lr == 0.008 and "cosine_extra" not in current.task


def test_mlp_ca_v1_trains_on_80_percent_with_v1s_cosine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 rows: 1,600 train (no validation split) → 25 steps an epoch at batch 64; the
    cosine's period is the steps plus the batch size, as v1 counted them."""
    monkeypatch.chdir(tmp_path)
    root = write_housing(tmp_path / "data", n=2000)
    overrides = ["task=mlp_housing", "hparams=paper_v1", "task.epochs=2", f"data.root={root}"]
    summary = train(config(tmp_path, [*overrides, "optimizer=sgd_momentum"]))
    steps = pd.read_csv(Path(summary["results"]) / "steps.csv")
    assert len(steps) == 50
    period = 50 + 64
    expected = [1e-3 * (1 + math.cos(math.pi * t / period)) / 2 for t in range(50)]
    assert steps["lr"].tolist() == pytest.approx(expected, rel=1e-9)
    evals = pd.read_csv(Path(summary["results"]) / "evals.csv")
    last_val = evals[evals["stage"] == "val"]["loss"].iloc[-1]
    assert last_val == pytest.approx(evals[evals["stage"] == "test"]["loss"].iloc[-1])


def test_gpt2_qqp_v1_settings_compose_and_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GptQqpConfig at b3ebff9: lr 3e-4 and weight decay 5e-4 for both families, 10 epochs; all
    of train.tsv trains and dev.tsv tests (24 rows each: 6 steps an epoch at batch 4)."""
    monkeypatch.chdir(tmp_path)
    cfg = config(tmp_path, ["task=gpt_hf_qqp", "hparams=paper_v1"])
    assert (cfg.task.epochs, cfg.task.cosine) == (10, False)
    for family in ("sgd", "adam"):
        assert (cfg.task[family].lr, cfg.task[family].weight_decay) == (3e-4, 5e-4)
        assert cfg.task[family].batch_size == 64
    assert (cfg.task.data.max_length, cfg.task.data.joiner, cfg.task.data.split_dev) == (
        512,
        "  ",
        False,
    )
    assert (cfg.task.model.lora_r, cfg.task.model.lora_alpha) == (6, 8)
    root = write_qqp(tmp_path / "data", n=24)
    small = ["+task.model.n_layer=1", "+task.model.n_embd=16", "+task.model.n_head=2"]
    overrides = ["task=gpt_hf_qqp", "hparams=paper_v1", "task.epochs=1", "task.adam.batch_size=4"]
    summary = train(config(tmp_path, [*overrides, *small, "optimizer=adamo", f"data.root={root}"]))
    assert summary["status"] == "finished"
    assert len(pd.read_csv(Path(summary["results"]) / "steps.csv")) == 6
    evals = pd.read_csv(Path(summary["results"]) / "evals.csv")
    last = evals.groupby("stage")["loss"].last()
    assert last["val"] == pytest.approx(last["test"])  # one split: the whole dev file


# trainer_configs.py at b3ebff9, transcribed: (lr, batch, weight decay, epochs, μ / β1) per
# family of each Table-1 task (DefaultConfig: lr 1e-3, B 64, weight decay 0, 50 epochs, μ 0.9,
# β1 0.9, unless its task's config says otherwise).
V1_TRAINER_CONFIGS = {
    "mlp_housing": {"sgd": (1e-3, 64, 0.0, 200, 0.9), "adam": (1e-3, 64, 0.0, 200, 0.9)},
    "2c2d_fmnist": {"sgd": (1e-3, 64, 0.0, 50, 0.9), "adam": (1e-3, 64, 0.0, 10, 0.9)},
    "3c3d_cifar10": {"sgd": (0.01, 128, 0.0, 100, 0.9), "adam": (1e-3, 128, 0.0, 100, 0.9)},
    "resnet18_cifar100": {
        "sgd": (0.01, 256, 5e-4, 250, 0.99),
        "adam": (1e-3, 256, 5e-4, 200, 0.9),
    },
    "vae_mnist": {"sgd": (1e-3, 64, 0.0, 50, 0.9), "adam": (1e-3, 64, 0.0, 50, 0.9)},
    "vae_fmnist": {"sgd": (1e-3, 64, 0.0, 100, 0.9), "adam": (1e-3, 64, 0.0, 100, 0.9)},
    "gpt_hf_qqp": {"sgd": (3e-4, 64, 5e-4, 10, 0.9), "adam": (3e-4, 64, 5e-4, 10, 0.9)},
}


@pytest.mark.parametrize("task", sorted(V1_TRAINER_CONFIGS))
def test_every_table1_task_has_the_references_v1_trainer_settings(
    task: str, tmp_path: Path
) -> None:
    cfg = config(tmp_path, [f"task={task}", "hparams=paper_v1"])
    for family, (lr, batch, decay, epochs, momentum) in V1_TRAINER_CONFIGS[task].items():
        hp = cfg.task[family]
        got = (hp.lr, hp.batch_size, hp.weight_decay, hp.get("epochs", cfg.task.epochs))
        assert got == (lr, batch, decay, epochs), (task, family)
        assert hp.get("momentum", hp.get("beta1")) == momentum, (task, family)
        assert hp.get("beta2", 0.999) == 0.999 and hp.get("eps", 1e-8) == 1e-8
    assert sorted(V1_TRAINER_CONFIGS) == sorted(
        p.stem for p in (Path(__file__).parents[1] / "configs/task_hparams/paper_v1").glob("*")
    )


def test_a_task_without_v1_settings_is_refused(tmp_path: Path) -> None:
    assert main_refuses(["task=mlp_energy", "hparams=paper_v1"], tmp_path)[-1] == (
        "main.py: error: task mlp_energy has no paper_v1 settings "
        "(configs/task_hparams/paper_v1/mlp_energy.yaml); use hparams=current"
    )
    assert not (tmp_path / "results").exists()


# Parameter counts of the reference's v1 models, summed by hand from their layers.
V1_PARAMETERS = {
    "2c2d_fmnist": 320 + 18_496 + 803_072 + 2_570,  # conv 32, conv 64, fc 3136→256, fc 256→10
    "vae_mnist": 1_069_153,  # 3 convs, μ and log σ², decoder input, 3 transposed convs, 1024→784
    "vae_fmnist": 1_069_153,
    "3c3d_cifar10": 4_864 + 55_392 + 110_720 + 590_336 + 131_328 + 2_570,
    "resnet18_cifar100": 11_227_812,  # torchvision resnet18(num_classes=100)
    "mlp_housing": 1_800 + 30_150 + 151,
}


@pytest.mark.parametrize("task", sorted(V1_PARAMETERS))
def test_v1_models_have_the_references_shapes(task: str, tmp_path: Path) -> None:
    from hydra.utils import instantiate

    cfg = config(tmp_path, [f"task={task}", "hparams=paper_v1"])
    model = instantiate(cfg.task.model)
    assert sum(p.numel() for p in model.parameters()) == V1_PARAMETERS[task]
    assert cfg.task.hparams == "paper_v1"


def test_each_family_trains_its_own_epochs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """2c2d-FM at v1: SGD 50 epochs, Adam 10 (here 3 and 1 on 120 images: 108 train → 2 batches)."""
    monkeypatch.chdir(tmp_path)
    root = write_mnist(tmp_path / "data", "FashionMNIST")
    common = ["task=2c2d_fmnist", "hparams=paper_v1", f"data.root={root}", "task.sgd.epochs=3"]
    for optimizer, steps in (("sgd_momentum", 6), ("adamw", 2)):
        summary = train(config(tmp_path, [*common, "task.adam.epochs=1", f"optimizer={optimizer}"]))
        assert summary["steps"] == steps, optimizer
