"""Null tests of the measured curve: an Overshoot optimizer at γ = 0 is its baseline, so it must
record exactly the baseline's per-step loss at the deployed weights, and the report must find
0 % saved with the paper's 400-step window."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from scripts.report import report
from tests.fake_data import write_cifar, write_housing, write_mnist
from tests.launch import config
from trainers.fit.callbacks import StepClock, StepRecorder
from trainers.fit.module import TrainModule
from trainers.results import optimizer_label
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


def test_gamma_zero_runs_no_metric_forward(null_runs: tuple[Path, dict[str, Path]]) -> None:
    """At γ = 0 the held weights are the base weights: no extra forward, as for a baseline."""
    _, folders = null_runs
    for label, folder in folders.items():
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["metric_time_s"] == 0.0 and meta["eval_time_s"] > 0, label


def test_the_step_time_is_the_median_of_each_steps_own_duration(
    null_runs: tuple[Path, dict[str, Path]],
) -> None:
    _, folders = null_runs
    for label, folder in folders.items():
        meta = json.loads((folder / "meta.json").read_text())
        times = pd.read_csv(folder / "steps.csv")["step_time"].to_numpy()
        assert len(times) == STEPS and (times > 0).all(), label
        assert meta["step_time_warmup"] == STEPS // 10
        after = times[STEPS // 10 :]
        assert meta["step_time_s"] == pytest.approx(np.median(after), rel=1e-6), label
        q1, q3 = np.percentile(after, [25, 75], method="weibull")
        assert meta["step_time_iqr_s"] == pytest.approx(q3 - q1, rel=1e-6), label
        assert meta["steps"] * meta["step_time_s"] < meta["wall_time_s"], label


def test_the_step_time_leaves_out_the_metric_forward_and_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Make the metric's forward 20 ms slower and each validation batch 0.3 s slower, with a
    validation every 15 steps: no step's time may move (a housing MLP step is ~1 ms), and the
    time must show up in their own figures. A step clock that ran on through the validation
    after a step, or through the metric's forward, would put it in that step."""
    slow, slow_eval = 0.02, 0.3

    def slowed(method: Any, seconds: float) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            time.sleep(seconds)
            return method(*args, **kwargs)

        return run

    monkeypatch.setattr(StepRecorder, "_at_deployed", slowed(StepRecorder._at_deployed, slow))
    validate = slowed(TrainModule.validation_step, slow_eval)
    monkeypatch.setattr(TrainModule, "validation_step", validate)
    root = write_housing(tmp_path / "data", n=2000)
    steps = 60
    overrides = ["task=mlp_housing", f"max_steps={steps}", f"data.root={root}", "optimizer=sgdo"]
    cfg = config(tmp_path, [*overrides, "+trainer.val_check_interval=15"])
    summary = train(cfg)
    meta = json.loads((Path(summary["results"]) / "meta.json").read_text())
    evals = pd.read_csv(Path(summary["results"]) / "evals.csv")
    assert (evals["stage"] == "val").sum() >= 3  # validations inside the run, not only at its end
    assert meta["metric_time_s"] >= steps * slow
    assert meta["eval_time_s"] >= 3 * slow_eval
    assert meta["step_time_s"] < slow / 2
    times = pd.read_csv(Path(summary["results"]) / "steps.csv")["step_time"]
    assert times.max() < slow_eval / 2, times.nlargest(4).to_dict()
    assert (times < slow).mean() > 0.9


def test_the_step_clock_leaves_compilation_out() -> None:
    """A step that compiles (AdamO's fused kernel, HeavyBall's) is timed without it; the
    compilation is counted on the process's compile clock instead."""
    clock = StepClock()
    compiled_before = clock.compile.seconds
    factor = float(time.time_ns() % 997) + 0.5  # a constant of its own: no compile cache hit
    twice = torch.compile(lambda x: x * factor + 1.0)  # compiles on its first call
    clock.start()
    twice(torch.ones(3))
    step = clock.take()
    compiled = clock.compile.seconds - compiled_before
    assert compiled > 0.05 and step.compiled == pytest.approx(compiled)
    assert step.seconds() < 0.2 * compiled


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


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    write_cifar(root, classes=100, n_per_batch=64, n_test=16)
    return write_mnist(root, n_train=64, n_test=16)


# A model whose extra forward could touch training: BatchNorm's running statistics (ResNet-18,
# with augmented batches) and random draws in the forward (the VAE's sampling).
TOUCHY = {"resnet18_cifar100": "task.sgd.batch_size=8", "vae_mnist": "task.sgd.batch_size=8"}


def short_run(tmp: Path, root: Path, task: str, overrides: list[str], experiment: str) -> Path:
    """Six steps at batch 8, two epochs or more."""
    common = [f"task={task}", TOUCHY[task], "max_steps=6", f"data.root={root}", "seed=1"]
    summary = train(config(tmp, [*common, *overrides], experiment=experiment))
    assert summary["status"] == "finished", summary
    return Path(summary["results"])


def assert_same_training(a: Path, b: Path, columns: list[str]) -> None:
    ours, theirs = pd.read_csv(a / "steps.csv"), pd.read_csv(b / "steps.csv")
    for column in columns:  # bitwise
        np.testing.assert_array_equal(ours[column].to_numpy(), theirs[column].to_numpy())
    pd.testing.assert_frame_equal(pd.read_csv(a / "evals.csv"), pd.read_csv(b / "evals.csv"))
    saved = [torch.load(f / "checkpoints" / "last.ckpt")["state_dict"] for f in (a, b)]
    for key in saved[0]:  # the running statistics of every BatchNorm layer included
        assert torch.equal(saved[0][key], saved[1][key]), key


def test_gamma_zero_with_batchnorm_records_exactly_the_baselines_curve(
    tmp_path: Path, images: Path
) -> None:
    task = "resnet18_cifar100"
    base = short_run(tmp_path, images, task, ["optimizer=sgd_momentum"], "bn")
    ours = short_run(tmp_path, images, task, ["optimizer=sgdo", "optimizer.overshoot=0"], "bn")
    assert_same_training(ours, base, ["loss", "loss_base"])


@pytest.mark.parametrize("task", list(TOUCHY))
def test_the_metric_forward_leaves_training_untouched(
    task: str, tmp_path: Path, images: Path
) -> None:
    """At γ = 5 the metric is an extra forward at θ on each training batch: with it or without
    it, training (BatchNorm running statistics, random draws, every loss at θ′) and the
    evaluations are the same to the bit."""
    sgdo = ["optimizer=sgdo", "optimizer.overshoot=5"]
    measured = short_run(tmp_path, images, task, sgdo, "with")
    plain = short_run(tmp_path, images, task, [*sgdo, "compute_base_model_loss=false"], "without")
    assert_same_training(measured, plain, ["loss"])
    steps = pd.read_csv(measured / "steps.csv")
    assert (steps["loss_base"] != steps["loss"]).iloc[1:].all()  # it did measure elsewhere
