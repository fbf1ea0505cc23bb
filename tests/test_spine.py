"""The run's spine: the results-folder contract, the one validation pass, precision, callbacks
from their config group, and what a re-launch compares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ProgressBar

from data import DataNotFoundError
from tests.launch import MAIN, config, main_refuses
from trainers import cli
from trainers.cli.checks import PRECISIONS, resolved_precision, validate
from trainers.fit.callbacks import BaseWeightsEvaluation, LossProgressBar
from trainers.fit.trainer import EpochStartCheckpoint, make_callbacks
from trainers.plan import config_change
from trainers.results import ENDED, RunPath, Status, run_folder, run_folders
from trainers.train import train


def test_a_run_folder_parses_back_into_its_parts(tmp_path: Path) -> None:
    path = RunPath("exp", "mlp_housing", "sgdo_g5", 12)
    folder = path.folder(tmp_path)
    assert folder == tmp_path / "exp" / "mlp_housing" / "sgdo_g5" / "seed=12"
    assert RunPath.parse(folder) == path
    with pytest.raises(ValueError, match="is not a run folder"):
        RunPath.parse(tmp_path / "exp" / "mlp_housing" / "sgdo_g5")


def test_run_folders_lists_seed_folders_only(tmp_path: Path) -> None:
    for seed in (1, 0):
        RunPath("e", "t", "o", seed).folder(tmp_path).mkdir(parents=True)
    (tmp_path / "e" / "t" / "o" / "seed=2.txt").write_text("a file, not a run")
    assert [RunPath.parse(p).seed for p in run_folders(tmp_path)] == [0, 1]


def test_the_harness_files_a_run_where_the_contract_says(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["optimizer=sgdo", "optimizer.overshoot=3", "seed=4"])
    assert RunPath.parse(run_folder(cfg)) == RunPath("peers", "mlp_diabetes", "sgdo_g3", 4)


def test_statuses_are_their_strings_and_two_have_ended() -> None:
    assert [str(s) for s in Status] == ["running", "finished", "diverged", "interrupted", "failed"]
    assert "finished" in ENDED and "diverged" in ENDED and "interrupted" not in ENDED


def test_missing_data_is_refused_before_lightning_is_imported(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", MAIN, "task=mlp_housing", f"data.root={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("main.py: error: missing data file") and "cal_housing.data" in last
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "hydra" in imported and "pytorch_lightning" not in imported and "torch" not in imported


def test_validate_names_the_missing_file_for_every_dataset_family(tmp_path: Path) -> None:
    tasks = {
        "mlp_mnist": "MNIST/raw/train-images-idx3-ubyte.gz",
        "vae_fmnist": "FashionMNIST/raw/train-images-idx3-ubyte.gz",
        "3c3d_cifar10": "cifar-10-batches-py/data_batch_1",
        "resnet18_cifar100": "cifar-100-python/train",
        "mlp_energy": "energy_efficiency/energy_efficiency_data.csv",
        "gpt_tiny_shakespeare": "tinyshakespeare/input.txt",
        "gpt_hf_sst": "glue_sst2/train.tsv",
    }
    for task, file in tasks.items():
        cfg = config(tmp_path, [f"task={task}", f"data.root={tmp_path}"])
        with pytest.raises(DataNotFoundError, match=f"missing data file {tmp_path / file};"):
            validate(cfg)


def test_a_multirun_with_a_bad_optimizer_value_is_refused_before_any_job(tmp_path: Path) -> None:
    argv = ["-m", "optimizer=sgd_momentum,sgdo", "task.sgd.lr=-1", "max_steps=3"]
    lines = main_refuses(argv, tmp_path)
    assert lines == ["main.py: error: task.sgd.lr=-1: expected a number >= 0"]
    assert not any(tmp_path.iterdir())


def test_one_precision_vocabulary(tmp_path: Path) -> None:
    lines = main_refuses(["precision=half"], tmp_path)
    assert lines == [f"main.py: error: precision='half': valid values are {', '.join(PRECISIONS)}"]
    assert resolved_precision("high", "cpu") == "64-true"
    assert resolved_precision("auto", "cpu") == "32-true"
    assert resolved_precision("bf16-mixed", "cpu") == "bf16-mixed"
    translated, _ = cli.split_argv(["--config_override", "precision=default"])
    assert translated == ["precision=auto"]  # the reference's name for the default


def test_an_on_off_key_takes_only_true_or_false(tmp_path: Path) -> None:
    lines = main_refuses(["-m", "force=nope", "seed=0,1"], tmp_path)
    assert lines == ["main.py: error: force='nope': valid values are true, false"]
    lines = main_refuses(["kernels=fast"], tmp_path)
    assert lines == ["main.py: error: kernels='fast': valid values are fused, foreach, single"]
    lines = main_refuses(["fused=false"], tmp_path)  # the key kernels replaced
    assert lines == [
        "main.py: error: fused=false: the key is now kernels=fused|foreach|single "
        "(fused=true was kernels=fused, fused=false kernels=foreach)"
    ]
    assert not any(tmp_path.iterdir())


def test_callbacks_come_from_their_config_group(tmp_path: Path) -> None:
    shown = config(tmp_path, ["trainer.enable_progress_bar=true"])
    kinds = [type(c) for c in make_callbacks(shown)]
    assert kinds == [BaseWeightsEvaluation, LossProgressBar, EpochStartCheckpoint]
    hidden = config(tmp_path, ["checkpoint_every_n_epochs=3"])  # trainer=debug: no bar
    made = make_callbacks(hidden)
    assert not any(isinstance(c, ProgressBar) for c in made)
    assert [c.every_n_epochs for c in made if isinstance(c, EpochStartCheckpoint)] == [3]
    extra = "+callbacks.timer={_target_: pytorch_lightning.callbacks.Timer}"
    changed = config(tmp_path, ["callbacks.checkpoint=null", extra])
    assert [type(c).__name__ for c in make_callbacks(changed)] == ["BaseWeightsEvaluation", "Timer"]


def test_a_folder_written_when_the_trainer_held_precision_still_matches(tmp_path: Path) -> None:
    """Runs filed before precision became one top-level key are the same runs, not others."""
    cfg = config(tmp_path, ["task=mlp_housing"])
    folder = tmp_path / "run"
    folder.mkdir()
    stored = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(stored, dict)
    stored["precision"], stored["trainer"]["precision"] = None, "32-true"
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(stored))
    assert config_change(folder, cfg) is None
    stored["precision"] = "high"
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(stored))
    assert config_change(folder, cfg) == "precision: '64-true' there, '32-true' now"


def test_a_compiled_fused_path_without_a_cpp_compiler_is_refused(tmp_path: Path) -> None:
    """On the CPU, torch.compile needs a C++ compiler: say so before the run, and how to avoid
    it, instead of failing inside Inductor at AdamO's first overshoot step."""
    import torch._inductor.config as inductor

    missing = str(tmp_path / "no-g++")
    with inductor.patch({"cpp.cxx": (None, missing)}), pytest.raises(ValueError) as refused:
        validate(config(tmp_path, ["optimizer=adamo"]))
    assert str(refused.value) == (
        "optimizer adamo with kernels=fused compiles its kernel, and torch.compile finds no C++ "
        "compiler here (No working C++ compiler found in torch._inductor.config.cpp.cxx: "
        f"(None, '{missing}')); install one or pass kernels=foreach"
    )
    with inductor.patch({"cpp.cxx": (None, missing)}):
        validate(config(tmp_path, ["optimizer=adamo", "kernels=foreach"]))  # foreach: no compiling
        validate(config(tmp_path, ["optimizer=sgdo"]))  # SGDO's fused path compiles nothing


def test_the_same_folder_reached_by_another_results_dir_is_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """results_dir says where the folder is, not what the run computes: the paper_v1 grid was
    run with an absolute results_dir and its README's command gives a relative one."""
    monkeypatch.chdir(tmp_path)
    first = train(config(tmp_path, ["max_steps=5", "~logger"]))  # results_dir: absolute
    again = train(config(tmp_path, ["max_steps=5", "~logger", "results_dir=results"]))
    assert first["status"] == "finished" and first["results"] == str(tmp_path / again["results"])
    assert again["status"] == "finished (already; force=true to re-run)"


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_take_the_users_umask(umask: int, tmp_path: Path) -> None:
    """A colleague on a shared file system reads what the group may read: atomic writes go
    through a temporary file (made 0600) and must not keep its mode."""
    import os

    old = os.umask(umask)
    try:
        summary = train(config(tmp_path, ["max_steps=3"]))
    finally:
        os.umask(old)
    files = [p for p in Path(summary["results"]).rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"config.yaml", "meta.json", "steps.csv", "evals.csv", "last.ckpt"} <= names
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
