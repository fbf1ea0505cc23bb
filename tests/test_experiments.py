"""The paper grids in configs/experiment name only tasks and optimizers that exist."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from tests.fake_data import write_housing
from tests.launch import run_main
from trainers.results import RunPath

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


def test_paper_v1_composes_for_a_slurm_cluster() -> None:
    overrides = ["experiment=paper_v1", "hydra/launcher=slurm", "trainer=gpu"]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides, return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.trainer.accelerator == "gpu"


def test_a_submitit_job_runs_from_outside_the_clone(tmp_path: Path) -> None:
    """submitit_local is the slurm launcher's code path without sbatch: each run is unpickled in
    a fresh interpreter started in the caller's folder, here not the clone, and with no
    PYTHONPATH of the caller's (which could name the clone): main.py must export it."""
    root = write_housing(tmp_path / "data", n=400)
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run_main(
        [
            "-m",
            "experiment=paper_v1",
            "task=mlp_housing",
            "optimizer=sgdo",
            "optimizer.overshoot=3",
            "seed=10",
            "max_steps=5",
            "hydra/launcher=submitit_local",
            f"results_dir={tmp_path / 'results'}",
        ],
        tmp_path,
        root,
        environ=environ,
    )
    run = RunPath("paper_v1", "mlp_housing", "sgdo_g3", 10).folder(tmp_path / "results")
    meta = json.loads((run / "meta.json").read_text())
    assert (meta["status"], meta["steps"]) == ("finished", 5)
