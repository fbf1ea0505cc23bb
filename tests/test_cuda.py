"""What only a GPU can check, run by scripts/device_check.py on a lent one: the fused kernels on
CUDA against their CPU float64 oracles, the metric's null pair under bf16 autocast, and members
under vmap. ``OVERSHOOT_TEST_DEVICE=cpu`` runs the same tests on the CPU (the script's dry run,
in CI), so they cannot rot; without a GPU and without that variable they are skipped."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from overshoot import SGDO, AdamO, Overshoot, TwoModelOvershoot
from tests.helpers import make_data, make_mlp, max_rel_diff, params_of, train
from tests.launch import config
from trainers.train import train as train_run

DEVICE = os.environ.get("OVERSHOOT_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(),
    reason="needs a GPU: scripts/device_check.py runs these on a lent one",
)
ACCELERATOR = "gpu" if DEVICE == "cuda" else "cpu"
STEPS = 100
SGD_KW = {"lr": 0.02, "momentum": 0.9, "weight_decay": 0.01}


def oracle_and_fused(name: str, model: torch.nn.Module, fused: torch.nn.Module) -> list[object]:
    """(the two-model reference in float64 on the CPU, the fused optimizer on DEVICE)."""
    if name == "sgdo":
        return [
            TwoModelOvershoot(model.parameters(), partial(torch.optim.SGD, **SGD_KW), 5.0),
            SGDO(fused.parameters(), overshoot=5.0, fused=True, **SGD_KW),  # type: ignore[arg-type]
        ]
    if name == "wrapper":
        return [
            TwoModelOvershoot(model.parameters(), partial(torch.optim.AdamW, lr=1e-3), 5.0),
            Overshoot(torch.optim.AdamW(fused.parameters(), lr=1e-3, fused=True), 5.0, fused=True),
        ]
    adamo = partial(AdamO, lr=1e-3, overshoot=5.0, overshoot_delay=0, weight_decay=0.1)
    return [  # AdamO: its own float64 multi-tensor step (tests/test_adamo.py: vs the exact form)
        adamo(model.parameters(), foreach=True),
        adamo(fused.parameters(), fused=True),
    ]


@pytest.mark.parametrize(("name", "tol"), [("sgdo", 2e-5), ("wrapper", 2e-5), ("adamo", 2e-5)])
def test_fused_kernels_on_the_device_follow_their_float64_oracle(name: str, tol: float) -> None:
    """float32 on the device against float64 on the CPU, 100 steps under a cosine schedule:
    each as close as float32 allows (measured on the CPU: SGDO 5e-7, the wrapper 1.3e-6, AdamO
    at weight decay 0.1 1.4e-6; a kernel that dropped the decay would be 5e-3 off)."""
    oracle, fused = make_mlp(torch.float64), make_mlp(torch.float32).to(DEVICE)
    opts = oracle_and_fused(name, oracle, fused)
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, STEPS) for o in opts]  # type: ignore[arg-type]
    data64 = make_data(torch.float64)
    data32 = tuple(t.to(torch.float32).to(DEVICE) for t in data64)
    train(oracle, opts[0], STEPS, data64, scheds[0])  # type: ignore[arg-type]
    train(fused, opts[1], STEPS, data32, scheds[1])  # type: ignore[arg-type, arg-type]
    with opts[0].base_weights(), opts[1].base_weights():  # type: ignore[attr-defined]
        got = [p.double().cpu() for p in params_of(fused)]
        assert max_rel_diff(got, params_of(oracle)) <= tol


def harness_run(tmp: Path, overrides: list[str], experiment: str) -> pd.DataFrame:
    common = [f"trainer.accelerator={ACCELERATOR}", "max_steps=60", "seed=1"]
    summary = train_run(config(tmp, [*common, *overrides], experiment=experiment))
    assert summary["status"] == "finished", summary
    return pd.read_csv(Path(summary["results"]) / "steps.csv")


def test_the_metric_null_pair_holds_under_bf16_autocast(tmp_path: Path) -> None:
    """SGDO at γ = 0 records CM's curve to the bit in bf16-mixed, where the loss at the deployed
    weights is taken inside the training forward's autocast."""
    bf16 = ["precision=bf16-mixed"]
    base = harness_run(tmp_path, [*bf16, "optimizer=sgd_momentum"], "bf16")
    ours = harness_run(tmp_path, [*bf16, "optimizer=sgdo", "optimizer.overshoot=0"], "bf16")
    for column in ("loss", "loss_base"):
        np.testing.assert_array_equal(ours[column].to_numpy(), base[column].to_numpy())
    moved = harness_run(tmp_path, [*bf16, "optimizer=sgdo"], "bf16")
    assert (moved["loss_base"] != moved["loss"]).iloc[1:].all()


def test_members_under_vmap_on_the_device_are_their_separate_runs(tmp_path: Path) -> None:
    """Seed 1 at γ 3 and 5 as the two members of one job, float64: each member's per-step
    losses are its separate run's to rtol 1e-10."""
    high = ["precision=high", "optimizer=sgdo"]
    members = ["vectorize=true", "members.overshoot=[3,5]"]
    common = [f"trainer.accelerator={ACCELERATOR}", "max_steps=60", "seed=1", *high]
    summary = train_run(config(tmp_path, [*common, *members], experiment="members"))
    assert [m["status"] for m in summary["members"]] == ["finished", "finished"]
    for member, gamma in zip(summary["members"], (3, 5), strict=True):
        ours = pd.read_csv(Path(member["results"]) / "steps.csv")
        separate = harness_run(tmp_path, [*high, f"optimizer.overshoot={gamma}"], "separate")
        for column in ("loss", "loss_base"):
            np.testing.assert_allclose(ours[column], separate[column], rtol=1e-10, atol=0)
