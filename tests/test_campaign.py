"""The cross-task campaign's commands (``scripts/campaign.py --dry``) and the ``cpu`` budget:
what it would run, where, and its refusals; nothing trains here."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch

from scripts import campaign
from tests.launch import config
from trainers.cli.checks import validate


def test_a_conv_tasks_grid_is_one_multirun_per_family_of_separate_runs_at_exact_rates(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(campaign, "RESULTS", tmp_path)  # the committed VAE-M is complete
    campaign.main(["vae_mnist", "--dry"])
    lines = [
        shlex.split(line[2:]) for line in capsys.readouterr().out.splitlines() if line[:2] == "+ "
    ]
    grids = [words for words in lines if words[0] == "main.py"]
    assert len(grids) == 2 and not any("vectorize=true" in g for g in grids)
    rates = "0.000125,0.00025,0.0005,0.001,0.002,0.004,0.008"  # paper_v1's 1e-3 × 2^-3..2^3
    for grid, (family, optimizers) in zip(grids, campaign.FAMILIES.items(), strict=True):
        assert f"optimizer={optimizers}" in grid and f"task.{family}.lr={rates}" in grid
        assert {
            "experiment=tuned",
            "budget=cpu",
            "hparams=paper_v1",
            "members.lr_scale=null",
        } <= set(grid)
        assert f"results_dir={campaign.RESULTS / 'cpu' / 'vae_mnist'}" in grid
    tune = [words for words in lines if words[0] == "scripts/tune.py"]
    assert tune[-1][-2:] == [
        "--evaluation",
        str(campaign.RESULTS / "cpu/vae_mnist/grid_eval/archive"),
    ]


def test_widening_a_separate_run_grid_gives_the_octaves_rate_outright() -> None:
    run = campaign.Campaign("vae_mnist", "cpu", dry=True)
    words = ["experiment=tuned", "optimizer=sgdo", "optimizer.overshoot=3"]
    command = run.main_py([*words, "members.lr_scale=[16]", "vectorize=true"])
    assert "task.sgd.lr=0.016" in command and "members.lr_scale=null" in command
    assert "vectorize=true" not in command
    members = campaign.Campaign("mlp_housing", "cpu", dry=True).main_py(words)
    assert "vectorize=true" in members  # an MLP's seeds and rates train as members


def test_bad_tasks_and_budgets_are_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, says in (
        (["nope"], "unknown task 'nope'; valid: 2c2d_fmnist, "),
        (["vae_mnist", "--budget", "gpu"], "unknown budget 'gpu'; valid: cpu, paper"),
    ):
        with pytest.raises(SystemExit) as stopped:
            campaign.main([*argv, "--dry"])
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and err.startswith(f"campaign.py: error: {says}"), err
        assert err.count("\n") == 1


def test_the_cpu_budget_sets_a_listed_tasks_steps_and_refuses_an_unlisted_one(
    tmp_path: Path,
) -> None:
    assert config(tmp_path, ["task=vae_mnist", "budget=cpu"]).max_steps == 640
    assert config(tmp_path, ["task=vae_mnist"]).max_steps is None  # budget=paper: the task's
    with pytest.raises(ValueError, match=r"^budget=cpu has no step budget for task mlp_diabetes "):
        validate(config(tmp_path, ["budget=cpu"]))
    validate(config(tmp_path, ["budget=cpu", "max_steps=9"]))  # a length given outright


def test_a_cifar_subset_of_training_batches_holds_out_its_own_test_split(tmp_path: Path) -> None:
    """The shared CIFAR-10 subset is one training batch and no test batch: with
    ``train_batches=1`` a fixed tenth is the test split (and validation, as at arXiv v1), the
    rest trains; without it the missing files are named, as before."""
    from data import DataNotFoundError, check_present
    from data.cifar import CIFARDataModule
    from tests.fake_data import write_cifar

    root = write_cifar(tmp_path, 10, n_per_batch=40, n_test=10)
    folder = root / "cifar-10-batches-py"
    for name in ["test_batch", *(f"data_batch_{i}" for i in range(2, 6))]:
        (folder / name).unlink()
    subset = {"_target_": "data.cifar.CIFARDataModule", "classes": 10, "train_batches": 1}
    check_present(subset, str(root), download=False)
    with pytest.raises(DataNotFoundError, match="data_batch_2"):
        check_present({**subset, "train_batches": None}, str(root), download=False)
    splits = [
        CIFARDataModule(str(root), val_fraction=v, train_batches=1).load() for v in (None, 0.25)
    ]
    (train, val, test), (train2, val2, test2) = splits
    assert (len(train[0]), len(val[0]), len(test[0])) == (36, 4, 4) and val is test
    assert (len(train2[0]), len(val2[0])) == (27, 9) and test2[0].equal(test[0])
    seen = {tuple(img.flatten()[:8].tolist()) for img in torch.cat([train[0], test[0]])}
    assert len(seen) == 40  # every image once: the test split is not trained on


def test_all_runs_each_campaign_task_with_a_budget_and_skips_the_complete_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task is complete when its tuned table exists and tune.py left nothing to widen or to
    evaluate; a task the budget has no length for is skipped, saying so."""
    monkeypatch.setattr(campaign, "RESULTS", tmp_path)
    monkeypatch.setattr(campaign, "TASKS", ("vae_mnist", "mlp_diabetes", "vae_fmnist"))
    for task, evaluate in (("vae_mnist", "# nothing left\n"), ("vae_fmnist", "")):
        tuning = tmp_path / "cpu" / task / "tuning"
        tuning.mkdir(parents=True)
        (tuning / "tuned_table.csv").write_text("task\n")
        (tuning / "widen.sh").write_text("set -e\n")
        (tuning / "evaluate.sh").write_text(evaluate)
    (tuning / "evaluate.sh").write_text(
        "python main.py -m experiment=tuned_eval task=vae_fmnist hparams=paper_v1 "
        "optimizer=adamo seed=10,20\n"
    )
    campaign.main(["all", "--dry"])
    out = capsys.readouterr().out
    assert f"vae_mnist: protocol complete already; tables in {tmp_path}/cpu/vae_mnist/tuning" in out
    assert "mlp_diabetes: skipped, budget=cpu has no step budget for task mlp_diabetes " in out
    assert "+ main.py -m experiment=tuned experiment_name=grid task=vae_fmnist " in out
    assert "+ main.py -m experiment=tuned experiment_name=grid task=vae_mnist " not in out
    assert out.rstrip().endswith(f"vae_fmnist: dry, nothing run; tables in {tuning}")
    with pytest.raises(SystemExit) as stopped:  # one task named outright: refused up front
        campaign.main(["mlp_diabetes", "--dry"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err == (
        "campaign.py: error: budget=cpu has no step budget for task mlp_diabetes "
        "(configs/budget/cpu.yaml): fix one from its measured step cost before its runs\n"
    )
