"""The paper grids in configs/experiment name only tasks and optimizers that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_grid_names_existing_groups(experiment: str) -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", [f"experiment={experiment}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    for group in ("task", "optimizer"):
        names = str(params[group]).split(",")
        missing = [n for n in names if not (CONFIGS / group / f"{n}.yaml").is_file()]
        assert not missing, f"{experiment}: unknown {group} {missing}"
    assert cfg.experiment_name == experiment


def compose_table1() -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", ["experiment=paper_table1"], return_hydra_config=True)


def test_paper_table1_is_the_papers_grid() -> None:
    cfg = compose_table1()
    params = cfg.hydra.sweeper.params
    assert len(str(params.task).split(",")) == 7  # MLP-CA, 2c2d-FM, 3c3d-C10, ResNet, VAE x2, GPT-2
    # The Adam-family baseline is AdamW with the task's weight decay, as the reference's adamW.
    assert str(params.optimizer).split(",") == [
        *("sgd_momentum", "sgd_nesterov", "sgdo", "adamw", "nadam", "adamo")
    ]
    assert str(params["optimizer.overshoot"]) == "3,5,7" and str(params.seed) == "range(10)"


def test_paper_v1_is_the_papers_grid_with_its_settings() -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", ["experiment=paper_v1"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert cfg.hparams.name == "paper_v1"
    assert str(params.seed).split(",") == [str(10 * i) for i in range(1, 11)]  # table1_run.sh
    tasks = str(params.task).split(",")
    assert sorted(tasks) == sorted(str(compose_table1().hydra.sweeper.params.task).split(","))
    for task in tasks:
        assert (CONFIGS / "task_hparams" / "paper_v1" / f"{task}.yaml").is_file(), task
    assert str(params.optimizer).split(",") == [
        *("sgd_momentum", "sgd_nesterov", "sgdo", "adamw", "nadam", "adamo")
    ]
