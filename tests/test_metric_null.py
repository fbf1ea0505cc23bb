"""Null tests of the measured curve: an Overshoot optimizer at γ = 0 is its baseline, so it must
record exactly the baseline's per-step loss at the deployed weights, and the report must find
0 % saved with the paper's 400-step window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts.report import report
from tests.fake_data import write_housing
from tests.launch import config
from trainers.labels import optimizer_label
from trainers.train import train

STEPS = 460  # past the paper's 400-step window, so the threshold is computed, not empty
BASES = ("sgd_momentum", "adamw")

PAIRS = {  # Overshoot at γ = 0: (its overrides, its baseline)
    "sgdo_g0": (["optimizer=sgdo"], "sgd_momentum"),
    "adamo_g0": (["optimizer=adamo"], "adamw"),
    "sgd_momentum_two_models_g0": (["optimizer=sgd_momentum", "two_models=true"], "sgd_momentum"),
}


@pytest.fixture(scope="module")
def null_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("null")
    root = write_housing(tmp / "data", n=2000)
    folders = {}
    common = ["task=mlp_housing", f"max_steps={STEPS}", f"data.root={root}", "seed=3"]
    for overrides in [*(o for o, _ in PAIRS.values()), *([f"optimizer={b}"] for b in BASES)]:
        cfg = config(tmp, [*common, *overrides, "optimizer.overshoot=0"], experiment="gamma0")
        summary = train(cfg)
        assert summary["status"] == "finished", summary
        folders[optimizer_label(cfg)] = Path(summary["results"])
    return tmp / "results" / "gamma0", folders


@pytest.mark.parametrize("pair", list(PAIRS))
def test_gamma_zero_records_exactly_the_baselines_curve(
    pair: str, null_runs: tuple[Path, dict[str, Path]]
) -> None:
    _, folders = null_runs
    ours = pd.read_csv(folders[pair] / "steps.csv")
    base = pd.read_csv(folders[PAIRS[pair][1]] / "steps.csv")
    assert len(ours) == len(base) == STEPS
    for column in ("loss", "loss_base"):  # bitwise: no rtol/atol slack at all
        np.testing.assert_array_equal(ours[column].to_numpy(), base[column].to_numpy())


def test_report_finds_nothing_saved_at_gamma_zero(
    null_runs: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    results, _ = null_runs
    table = report(results, tmp_path / "report", [0.5, 0.95], 400, tensorboard=None)
    assert set(table["baseline"]) == {"sgd_momentum", "adamw"}
    at = table[np.isclose(table["fraction"], 0.95)].set_index("optimizer")
    for name in PAIRS:
        row = at.loc[name]
        assert row["index"] == at.loc[row["baseline"], "index"] >= 0, name
        assert row["savings"] == 0.0 and row["savings_seed_mean"] == 0.0, name


def test_step_time_leaves_out_the_metric_and_evaluation(
    null_runs: tuple[Path, dict[str, Path]],
) -> None:
    """steps/s counts training alone; the metric's forward (Overshoot only) and evaluation are
    timed apart, and the parts add up to the wall time."""
    _, folders = null_runs
    for label, folder in folders.items():
        meta = json.loads((folder / "meta.json").read_text())
        parts = meta["train_time_s"] + meta["metric_time_s"] + meta["eval_time_s"]
        assert parts == pytest.approx(meta["wall_time_s"], abs=2e-3), label
        assert meta["steps_per_s"] == pytest.approx(STEPS / meta["train_time_s"], rel=1e-2)
        assert meta["eval_time_s"] > 0, label
        assert (meta["metric_time_s"] > 0) == (label in PAIRS), label


def test_divergence_is_recorded_at_its_first_step_and_stops_at_that_flush(tmp_path: Path) -> None:
    """Rows are flushed every log_every_n_steps (50 here; no checkpoints, which flush too): the
    run records the first non-finite step as diverged_at_step and stops at the end of the block
    that holds it."""
    overrides = ["optimizer=sgd_momentum", "task.sgd.lr=50", "max_steps=400"]
    cfg = config(tmp_path, [*overrides, "checkpoint_every_n_epochs=0"])
    summary = train(cfg)
    assert summary["status"] == "diverged"
    folder = Path(summary["results"])
    meta = json.loads((folder / "meta.json").read_text())
    steps = pd.read_csv(folder / "steps.csv")
    values = steps[["loss", "loss_base"]].to_numpy()
    first = int(steps["step"][~np.isfinite(values).all(axis=1)].iloc[0])
    assert meta["status"] == "diverged" and meta["diverged_at_step"] == first < 400
    block_end = -(-first // 50) * 50
    assert meta["steps"] == block_end == steps["step"].iloc[-1] == len(steps)
