"""The paper grids in configs/experiment name only tasks and optimizers that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from trainers.labels import run_folder
from trainers.relaunch import config_change
from trainers.results import RunPath, run_folders

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


def test_paper_table1_is_the_papers_grid() -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", ["experiment=paper_table1"], return_hydra_config=True)
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
    for task in str(params.task).split(","):
        assert (CONFIGS / "task_hparams" / "paper_v1" / f"{task}.yaml").is_file(), task
    assert str(params.optimizer).split(",") == [
        *("sgd_momentum", "sgd_nesterov", "sgdo", "adamw", "nadam", "adamo")
    ]


COMMITTED = [e for e in ("paper_cpu", "paper_v1") if (CONFIGS.parent / "results" / e).is_dir()]


@pytest.mark.parametrize("experiment", COMMITTED)
def test_committed_results_are_the_runs_their_commands_compose(experiment: str) -> None:
    """Re-running an experiment's command finds each committed run as the same run (skipped as
    done), not one with other settings: the results format and the settings stay comparable."""
    folders = list(run_folders(CONFIGS.parent / "results" / experiment))
    assert folders
    composed: dict[tuple[str, str], DictConfig] = {}
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        for folder in folders:
            run = RunPath.parse(folder)
            if (run.task, run.optimizer) not in composed:  # seeds differ in the seed alone
                label = re.fullmatch(r"(.+)_g([\d.]+)", run.optimizer)
                optimizer = (
                    [f"optimizer={label[1]}", f"optimizer.overshoot={label[2]}"]
                    if label
                    else [f"optimizer={run.optimizer}"]
                )
                where = f"results_dir={CONFIGS.parent / 'results'}"
                given = [f"experiment={experiment}", f"task={run.task}", where, *optimizer]
                composed[(run.task, run.optimizer)] = compose("config", given)
            cfg = composed[(run.task, run.optimizer)]
            cfg.seed = run.seed
            assert run_folder(cfg) == folder
            assert config_change(folder, cfg) is None, folder
