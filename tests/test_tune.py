"""The tuning grid (#31): rates as factors of the task's (``members.lr_scale``), and
``scripts/tune.py``'s choice of each optimizer's rate by rules fixed in advance."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from scripts import tune
from scripts.collect import read_sources
from tests.launch import config
from trainers.checks import validate
from trainers.train import train

SCALES = [0.5, 1, 2]
WINDOW = 20


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CM and SGDO at γ = 0 (CM step for step) at three rates around diabetes's, two seeds each."""
    tmp = tmp_path_factory.mktemp("tuned")
    for optimizer in ("optimizer=sgd_momentum", "optimizer=sgdo"):
        members = ["vectorize=true", "members.seed=[1,2]", f"members.lr_scale={SCALES}"]
        overrides = [optimizer, "optimizer.overshoot=0", "lr_in_label=true", "max_steps=120"]
        train(config(tmp, [*overrides, *members, "logger=csv"], experiment="tuned"))
    return tmp / "results" / "tuned"


def test_scaled_rates_are_filed_as_their_rates(grid: Path) -> None:
    task_rate = 0.01  # configs/task/mlp_diabetes.yaml
    for scale in SCALES:
        rate = task_rate * scale
        folder = grid / "mlp_diabetes" / f"sgd_momentum_lr{rate:g}" / "seed=1"
        assert OmegaConf.load(folder / "config.yaml").task.sgd.lr == rate


def test_gamma_zero_picks_the_baselines_rate_with_its_scores(grid: Path) -> None:
    """The null case: SGDO at γ = 0 records CM's curves, so each rule gives it CM's rate and
    CM's score, seed by seed."""
    records, _ = read_sources([grid])
    rates = tune.rate_grid(records, WINDOW, 0.95)
    assert set(rates["rate"]) == {0.005, 0.01, 0.02}
    cm, sgdo = (
        rates[rates["optimizer"] == o].reset_index(drop=True) for o in ("sgd_momentum", "sgdo_g0")
    )
    pd.testing.assert_series_equal(cm["steps_to_t"], sgdo["steps_to_t"])
    pd.testing.assert_series_equal(cm["final"], sgdo["final"])
    assert cm["steps_to_t"].map(math.isfinite).any()
    chosen = tune.choose(rates).set_index(["optimizer", "rule"])
    for rule in tune.RULES:
        ours, theirs = chosen.loc[("sgdo_g0", rule)], chosen.loc[("sgd_momentum", rule)]
        assert ours["rate"] == theirs["rate"] and ours["score"] == theirs["score"]


def test_the_rules_as_stated() -> None:
    """A rate where one seed never reaches T loses to a slower rate that always does; a
    diverged seed makes a rate's final loss infinite; ties go to the smaller rate."""
    rows = [  # rate, seed, steps to T, final loss
        (0.1, 1, 50.0, 0.30),
        (0.1, 2, math.inf, math.inf),
        (0.2, 1, 80.0, 0.20),
        (0.2, 2, 90.0, 0.25),
        (0.4, 1, 80.0, 0.20),
        (0.4, 2, 90.0, 0.25),
    ]
    grid = pd.DataFrame(rows, columns=["rate", "seed", "steps_to_t", "final"])
    grid = grid.assign(task="t", family="sgd", optimizer="sgdo_g5", task_rate=0.2)
    chosen = tune.choose(grid).set_index("rule")
    assert chosen.loc["steps", "rate"] == 0.2 and chosen.loc["steps", "score"] == 85.0
    assert chosen.loc["final", "rate"] == 0.2 and chosen.loc["final", "scale"] == 1.0


def test_the_script_writes_its_tables_and_figure(grid: Path, tmp_path: Path) -> None:
    tune.main([str(grid), "--out", str(tmp_path), "--window", str(WINDOW)])
    chosen = pd.read_csv(tmp_path / "tuned_rates.csv")
    assert set(chosen["optimizer"]) == {"sgd_momentum", "sgdo_g0"}
    assert len(pd.read_csv(tmp_path / "rate_grid.csv")) == 2 * len(SCALES) * 2
    assert (tmp_path / "sensitivity_mlp_diabetes.png").stat().st_size > 10_000


def test_a_grid_without_the_baseline_at_the_tasks_rate_is_refused(
    grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only = grid.parent / "only_sgdo"
    (only / "mlp_diabetes").mkdir(parents=True)
    for folder in (grid / "mlp_diabetes").glob("sgdo_g0_lr*"):
        shutil.copytree(folder, only / "mlp_diabetes" / folder.name)
    with pytest.raises(SystemExit) as exit_:
        tune.main([str(only), "--out", str(tmp_path), "--window", str(WINDOW)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no finished sgd_momentum run at the task's rate 0.01" in err and err.count("\n") == 1


def test_a_scale_grid_without_members_is_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["members.lr_scale=[0.5,1]", "lr_in_label=true"])
    with pytest.raises(ValueError, match=r"members.lr_scale=\[0.5, 1\]: .* pass vectorize=true"):
        validate(cfg)
    cfg = config(tmp_path, ["members.lr_scale=[0.5,1]", "vectorize=true", "optimizer=sgdo"])
    with pytest.raises(ValueError, match="need lr_in_label=true"):
        validate(cfg)
