"""Every optimizer config runs through the harness; peers evaluate at their deployable weights."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from tests.launch import config
from trainers import cli
from trainers.fit import optimizer_factory
from trainers.fit.module import deploy_switch
from trainers.results import run_folder
from trainers.train import train

STEPS = 58  # not a multiple of Lookahead's k = 5, so its slow and fast weights differ at the end

# HeavyBall's ADOPT (its defaults, eps 1e-8) normalises the second step's gradient by the
# first step's, which is 0 for dead ReLU units: the weights jump to ~1e3 and the loss to 1e19.
DIVERGES_ON_DIABETES = {"hb_adopt"}

# Train at weights other than the ones to deploy (Overshoot θ′, Lookahead's fast weights,
# schedule-free y); the rest hold their deployable weights.
MOVES_WEIGHTS = {
    "sgdo",
    "adamo",
    "adamw_overshoot_replication",
    "overshoot_laprop",
    "lookahead_sgd",
    "lookahead_adam",
    "hb_sfadamw",
}


def run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str], status: str = "finished"
) -> Path:
    monkeypatch.chdir(tmp_path)
    cfg = config(tmp_path, [f"max_steps={STEPS}", *overrides])
    summary = train(cfg)
    assert summary["status"] == status, summary
    return run_folder(cfg)


@pytest.mark.parametrize("optimizer", cli.choices("optimizer"))
def test_every_optimizer_trains_and_writes_its_results(
    optimizer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if optimizer in DIVERGES_ON_DIABETES:
        folder = run(tmp_path, monkeypatch, [f"optimizer={optimizer}"], status="diverged")
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["diverged_at_step"] < STEPS
        return
    folder = run(tmp_path, monkeypatch, [f"optimizer={optimizer}"])
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["steps"] == STEPS
    steps = pd.read_csv(folder / "steps.csv")
    assert list(steps["step"]) == list(range(1, STEPS + 1))
    # Measured before each update: at step 1 every optimizer still holds what it would deploy;
    # one that never holds other weights records its training loss as loss_base throughout.
    assert steps["loss_base"][0] == steps["loss"][0], optimizer
    if optimizer not in MOVES_WEIGHTS:
        assert (steps["loss_base"] == steps["loss"]).all(), optimizer
    else:
        assert (steps["loss_base"] != steps["loss"]).any(), optimizer
    assert steps["loss"].tail(10).mean() < 0.9 * steps["loss"].head(10).mean(), optimizer
    assert {"val", "test"} <= set(pd.read_csv(folder / "evals.csv")["stage"])
    # The checkpoint, optimizer state included, loads with weights_only (as resuming does).
    ckpt = torch.load(folder / "checkpoints" / "last.ckpt")
    assert ckpt["optimizer_states"]


@pytest.mark.parametrize("optimizer", ["hb_sfadamw", "lookahead_adam", "adamo"])
def test_evaluation_and_checkpoint_see_the_deployable_weights(
    optimizer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schedule-free (x), Lookahead (slow) and Overshoot (θ) train elsewhere: the checkpoint's
    ``state_dict`` holds what the optimizer itself, rebuilt at the held weights from the
    checkpoint's state, deploys, and the per-step loss there differs."""
    folder = run(tmp_path, monkeypatch, [f"optimizer={optimizer}"])
    ckpt = torch.load(folder / "checkpoints" / "last.ckpt")
    deployed, held = ckpt["state_dict"], ckpt["overshoot_held_state_dict"]
    cfg = config(tmp_path, [f"max_steps={STEPS}", f"optimizer={optimizer}"])
    model = instantiate(cfg.task.model)
    model.load_state_dict({k.removeprefix("model."): v for k, v in held.items()})
    opt = optimizer_factory(cfg)(model.parameters())
    opt.load_state_dict(ckpt["optimizer_states"][0])
    switch = deploy_switch(opt)
    assert switch is not None
    with switch:
        rebuilt = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    assert rebuilt.keys() == deployed.keys()
    for key in deployed:
        assert torch.equal(rebuilt[key], deployed[key]), key
    assert any(not torch.equal(deployed[k], held[k]) for k in deployed)
    steps = pd.read_csv(folder / "steps.csv")
    assert (steps["loss"] != steps["loss_base"]).any()


def test_two_models_with_any_base_equals_the_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two-model mode around HeavyBall's LaProp is the exact wrapper around it (to rounding)."""
    common = ["precision=high", "optimizer.overshoot=3"]
    two = run(tmp_path, monkeypatch, [*common, "optimizer=hb_laprop", "two_models=true"])
    one = run(tmp_path, monkeypatch, [*common, "optimizer=overshoot_laprop"])
    a, b = pd.read_csv(two / "steps.csv"), pd.read_csv(one / "steps.csv")
    pd.testing.assert_series_equal(a["loss"], b["loss"], rtol=1e-9, atol=0)
    pd.testing.assert_series_equal(a["loss_base"], b["loss_base"], rtol=1e-9, atol=0)
