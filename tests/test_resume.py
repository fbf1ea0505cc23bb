"""Interruption and resume with real signals: a stopped run continues bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import main
from overshoot import SGDO
from tests.fake_data import write_housing
from tests.launch import stop_after_checkpoint
from trainers.results import RunPath

MAIN = str(Path(main.__file__).resolve())
ARGS = [
    *("--model", "mlp", "--dataset", "housing", "--opt_name", "sgd_overshoot", "--seed", "3"),
    "trainer=debug",
    *("--config_override", "precision=high", "B=64", "max_steps=400"),
]


def start(cwd: Path, root: Path, experiment: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, MAIN, *ARGS, "--experiment_name", experiment],
        cwd=cwd,
        env={**os.environ, "OVERSHOOT_DATA": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_dir(cwd: Path, experiment: str) -> Path:
    return RunPath(experiment, "mlp_housing", "sgdo_g5", 3).folder(cwd / "results")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(working folder, data root) of the run never interrupted, experiment ``whole``."""
    cwd = tmp_path_factory.mktemp("resume")
    root = write_housing(cwd / "data", n=2000)
    whole = start(cwd, root, "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()[-2000:] if whole.stderr else ""
    return cwd, root


@pytest.mark.slow
def test_killed_runs_resume_bit_for_bit(uninterrupted: tuple[Path, Path]) -> None:
    tmp_path, root = uninterrupted

    folder = run_dir(tmp_path, "cut")
    ckpt = folder / "checkpoints" / "last.ckpt"
    first = start(tmp_path, root, "cut")
    stop_after_checkpoint(first, ckpt, signal.SIGTERM)
    assert first.returncode == 130
    assert "run the same command again to resume" in (first.stderr.read() if first.stderr else "")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "interrupted" and 0 < meta["stopped_at_step"] < 400
    assert (folder / "steps.csv.part").exists() and not (folder / "steps.csv").exists()

    second = start(tmp_path, root, "cut")  # resumes, then dies without any chance to clean up
    stop_after_checkpoint(second, ckpt, signal.SIGKILL)
    assert json.loads((folder / "meta.json").read_text())["status"] == "running"

    third = start(tmp_path, root, "cut")
    assert third.wait(timeout=300) == 0, third.stderr.read()[-2000:] if third.stderr else ""
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "finished" and len(meta["resumed_at_steps"]) == 2
    resumed = ", ".join(map(str, meta["resumed_at_steps"]))
    assert third.stdout is not None
    assert f"status: finished after 400 steps, resumed at step {resumed}\n" in third.stdout.read()

    columns = ["step", "epoch", "lr", "loss", "loss_base"]
    for name, cols in (("steps.csv", columns), ("evals.csv", None)):
        a = pd.read_csv(run_dir(tmp_path, "whole") / name)
        b = pd.read_csv(folder / name)
        pd.testing.assert_frame_equal(
            a[cols] if cols else a, b[cols] if cols else b, check_exact=True
        )
    assert len(pd.read_csv(folder / "steps.csv")) == 400


def test_checkpoint_holds_base_weights_and_resumes_from_held(
    uninterrupted: tuple[Path, Path],
) -> None:
    """``state_dict`` is what a user deploys, θ: what SGDO, rebuilt at the held θ′ from the
    checkpoint's optimizer state, gives as its base weights; θ′ is kept for resuming."""
    ckpt = torch.load(run_dir(uninterrupted[0], "whole") / "checkpoints" / "last.ckpt")
    base, held = ckpt["state_dict"], ckpt["overshoot_held_state_dict"]
    assert base.keys() == held.keys()
    assert ckpt["optimizer_states"][0]["overshoot_at_base"] is False
    params = [held[k].clone() for k in held]
    opt = SGDO(params)
    opt.load_state_dict(ckpt["optimizer_states"][0])
    with opt.base_weights():
        for key, p in zip(held, params, strict=True):
            assert torch.equal(base[key], p), key
    assert any(not torch.equal(base[k], held[k]) for k in base)
