"""Two-process DDP on CPU (gloo) matches one process with the same global batch."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.fake_data import write_housing
from tests.launch import run_main
from trainers.results import RunPath

COMMON = [
    *("task=mlp_housing", "optimizer=sgdo", "precision=high", "max_steps=160"),
    *("task.sgd.batch_size=64", "trainer.enable_progress_bar=false"),
]


def run(tmp_path: Path, root: Path, experiment: str, trainer: list[str]) -> Path:
    args = [*COMMON, *trainer, f"experiment_name={experiment}"]
    proc = run_main(args, tmp_path, root, timeout=300)
    assert proc.stdout.count("status: finished") == 1  # rank 1 prints nothing
    return RunPath(experiment, "mlp_housing", "sgdo_g5", 0).folder(tmp_path / "results")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    root = write_housing(tmp_path / "data", n=2000)
    ddp = run(
        tmp_path, root, "ddp", ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    )
    one = run(tmp_path, root, "one", ["trainer=debug"])

    meta = json.loads((ddp / "meta.json").read_text())
    assert meta["status"] == "finished" and meta["world_size"] == 2
    assert meta["rank_weight_diff"] == 0.0  # the same base weights on both ranks
    a, b = pd.read_csv(ddp / "steps.csv"), pd.read_csv(one / "steps.csv")
    assert len(a) == 160 and len(pd.read_csv(ddp / "evals.csv")) > 1
    for column in ("loss", "loss_base"):  # the mean over both ranks' halves of each batch
        pd.testing.assert_series_equal(a[column], b[column], rtol=1e-12, atol=0)
    pd.testing.assert_frame_equal(
        pd.read_csv(ddp / "evals.csv"), pd.read_csv(one / "evals.csv"), rtol=1e-12, atol=0
    )
    deployed = torch.load(ddp / "checkpoints" / "last.ckpt")["state_dict"]
    single = torch.load(one / "checkpoints" / "last.ckpt")["state_dict"]
    for key, value in single.items():
        torch.testing.assert_close(deployed[key], value, rtol=1e-12, atol=1e-14)


def test_ranks_take_disjoint_slices_that_make_up_each_global_batch() -> None:
    from data.tensors import EpochBatches

    single = list(EpochBatches(103, 10, shuffle=True, seed=4))
    ranks = [list(EpochBatches(103, 10, shuffle=True, seed=4, rank=r, world=3)) for r in range(3)]
    assert all(len(r) == len(single) for r in ranks)
    for i, batch in enumerate(single):
        assert torch.equal(torch.cat([r[i] for r in ranks]), batch)
        assert max(len(r[i]) for r in ranks) - min(len(r[i]) for r in ranks) <= 1
