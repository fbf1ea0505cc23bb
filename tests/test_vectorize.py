"""Vectorized members (vectorize=true): each member computes what its separate run computes, is
filed as that run would be, diverges alone, and the switch refuses what cannot vectorize."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

import main
from tests.fake_data import write_cifar, write_housing, write_mnist
from tests.launch import MAIN, config, run_main, stop_after_checkpoint
from trainers import cli
from trainers.cli import sweeps
from trainers.fit.trainer import last_checkpoint
from trainers.plan import job_folder
from trainers.results import RunPath
from trainers.train import train

TIMES = ["wall_time", "step_time"]  # how long, not what: the only columns allowed to differ
SEEDS = [1, 2]
TASKS = {  # task: steps (a few hundred where a step is cheap)
    "mlp_housing": 300,
    "2c2d_fmnist": 40,
}
OPTIMIZERS = {  # name: (overrides, γ of the members; None: the optimizer has none)
    "sgdo": (["optimizer=sgdo"], [3, 5]),
    "adamo": (["optimizer=adamo"], [3, 5]),
    "cm": (["optimizer=sgd_momentum"], None),
    "adam": (["optimizer=adam"], None),
    "two_models": (["optimizer=sgd_momentum", "two_models=true"], [3, 5]),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_housing(root, n=2000)
    write_mnist(root, folder="FashionMNIST", n_train=600, n_test=60)
    write_cifar(root, classes=100)
    return root


def common(task: str, root: Path) -> list[str]:
    """A short float64 run; conv members train as members here too (not apart: see
    test_conv_members_on_the_cpu_train_apart_as_their_separate_runs)."""
    return [
        *(f"task={task}", f"max_steps={TASKS[task]}", f"data.root={root}", "precision=high"),
        "members.apart=false",
    ]


def run(tmp: Path, overrides: list[str], experiment: str) -> dict[str, Any]:
    summary = train(config(tmp, [*overrides, "logger=csv"], experiment=experiment))
    return summary


def assert_same_run(member: Path, separate: Path) -> None:
    """Per-step held and base losses, evaluations and final weights agree to rtol 1e-10."""
    for name, columns in (("steps.csv", ["loss", "loss_base"]), ("evals.csv", ["loss"])):
        a, b = pd.read_csv(member / name), pd.read_csv(separate / name)
        assert list(a["step"]) == list(b["step"])
        for column in columns:
            np.testing.assert_allclose(a[column], b[column], rtol=1e-10, atol=0)
    ours = torch.load(last_checkpoint(member))["state_dict"]
    theirs = torch.load(last_checkpoint(separate))["state_dict"]
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-10, atol=1e-14)


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_each_member_is_its_separate_run(
    task: str, name: str, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    overrides, gammas = OPTIMIZERS[name]
    gammas = gammas if task == "mlp_housing" else None  # γ members: on the cheap task
    members = [f"members.seed={SEEDS}".replace(" ", "")]
    if gammas:
        members.append(f"members.overshoot={gammas}".replace(" ", ""))
    base = [*common(task, data_root), *overrides]
    summary = run(tmp_path, [*base, "vectorize=true", *members], "vec")
    assert [m["status"] for m in summary["members"]] == ["finished"] * len(summary["members"])
    assert len(summary["members"]) == len(SEEDS) * len(gammas or [None])
    for member in summary["members"]:
        folder = Path(member["results"])
        own = OmegaConf.load(folder / "config.yaml")  # the member's seed and γ
        overshoot = f"optimizer.overshoot={own.optimizer.overshoot}"
        separate = run(tmp_path, [*base, f"seed={own.seed}", overshoot], "sep")
        assert Path(separate["results"]).parent.name == folder.parent.name
        assert_same_run(folder, Path(separate["results"]))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sgdo", "adamo", "cm"])
def test_learning_rates_as_members_are_their_separate_runs(
    name: str, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grid of rates as one job (a param group each, the cosine scaling each group's own):
    each member is the separate run at its rate, filed in its folder."""
    monkeypatch.chdir(tmp_path)
    overrides, _ = OPTIMIZERS[name]
    family = "adam" if name == "adamo" else "sgd"
    rates = [0.002, 0.004, 0.008] if family == "sgd" else [5e-4, 1e-3, 2e-3]
    base = [*common("mlp_housing", data_root), *overrides, "lr_in_label=true", "seed=1"]
    base.append("max_steps=120")  # the cosine moves every rate already
    members = [f"members.lr.{family}=[{','.join(map(str, rates))}]", "vectorize=true"]
    summary = run(tmp_path, [*base, *members], "vec")
    assert [m["status"] for m in summary["members"]] == ["finished"] * 3
    for member, rate in zip(summary["members"], rates, strict=True):
        folder = Path(member["results"])
        assert folder.parent.name.endswith(f"_lr{rate:g}")
        assert OmegaConf.load(folder / "config.yaml").task[family].lr == rate
        separate = run(tmp_path, [*base, f"task.{family}.lr={rate}"], "sep")
        assert Path(separate["results"]).parent.name == folder.parent.name
        assert_same_run(folder, Path(separate["results"]))


def test_members_diverge_alone(data_root: Path, tmp_path: Path) -> None:
    """At this rate seed 0 diverges within a few steps and seed 3 trains on: each is recorded
    as its separate run records it."""
    overrides = [*common("mlp_housing", data_root), "optimizer=sgd_momentum", "task.sgd.lr=0.6"]
    summary = run(tmp_path, [*overrides, "vectorize=true", "members.seed=[0,3]"], "vec")
    statuses = {Path(m["results"]).name: m["status"] for m in summary["members"]}
    assert statuses == {"seed=0": "diverged", "seed=3": "finished"}
    for seed in (0, 3):
        separate = run(tmp_path, [*overrides, f"seed={seed}"], "sep")
        member = Path(separate["results"].replace("/sep/", "/vec/"))
        a, b = (
            pd.read_csv(member / "steps.csv"),
            pd.read_csv(Path(separate["results"]) / "steps.csv"),
        )
        assert list(a["step"]) == list(b["step"]) and a["loss"].isna().any() == (seed == 0)
        for column in ("loss", "loss_base"):  # float64: NaN where the separate run has NaN
            np.testing.assert_allclose(a[column], b[column], rtol=1e-10, atol=0)
        ours, theirs = (
            pd.read_json(f / "meta.json", typ="series") for f in (member, Path(separate["results"]))
        )
        assert ours["status"] == theirs["status"]
        assert ours["diverged_at_step"] == theirs["diverged_at_step"]


def test_ended_members_are_not_rerun(data_root: Path, tmp_path: Path) -> None:
    overrides = [*common("mlp_housing", data_root), "max_steps=20", "optimizer=sgdo"]
    first = run(tmp_path, [*overrides, "vectorize=true", "members.seed=[0,1]"], "vec")
    meta = Path(first["members"][0]["results"]) / "meta.json"
    written = meta.read_text()
    again = run(tmp_path, [*overrides, "vectorize=true", "members.seed=[0,1,2]"], "vec")
    statuses = [m["status"] for m in again["members"]]
    assert statuses[:2] == ["finished (already; force=true to re-run)"] * 2
    assert statuses[2] == "finished"
    assert meta.read_text() == written
    separate = run(tmp_path, [*overrides, "seed=1"], "vec")  # the separate run: same run
    assert separate["status"].startswith("finished (already")


def test_random_layers_draw_independent_noise_per_member() -> None:
    """vmap's ``randomness="different"``: identical members on identical inputs draw noise of
    their own, each standard normal and uncorrelated with the other's; a VAE's posterior mean
    (eval) draws none, so its members agree exactly."""
    from models.vae import VAE
    from trainers.members.stacked import Members

    class Noise(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.scale * torch.randn_like(x)

    torch.manual_seed(0)
    draws = Members([Noise(), Noise()])(torch.zeros(2, 4096, 4))
    a, b = draws[0].flatten(), draws[1].flatten()
    for d in (a, b):
        assert abs(float(d.mean())) < 0.05 and abs(float(d.std()) - 1) < 0.05
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.05

    torch.manual_seed(0)
    same = VAE()
    members = Members([same, same])
    x = torch.rand(1, 4, 1, 28, 28).expand(2, 4, 1, 28, 28)
    out = members(x)
    assert not torch.equal(out[0], out[1])  # its sampling draws differ per member (as above)
    members.eval()
    out = members(x[0])
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)  # the posterior mean does not


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer=sgd_c"], "optimizer sgd_c does not vectorize"),
        (["task=resnet18_cifar100"], "task resnet18_cifar100 does not vectorize: its BatchNorm"),
        (["trainer.gradient_clip_val=1.0"], "trainer.gradient_clip_val=1.0: clipping"),
        (["members.seed=[-1]"], "members.seed=[-1]: expected a list of non-negative integers"),
        (["members.apart=maybe"], "members.apart='maybe': expected one of auto, true, false"),
        (["members.lr.sgd=[0.1,0]"], "members.lr.sgd=[0.1, 0]: expected a list of numbers > 0"),
        (
            ["members.lr.sgd=[0.1,0.2]"],
            "members.lr.sgd=[0.1, 0.2]: members of several learning rates need lr_in_label=true",
        ),
    ],
)
def test_what_cannot_vectorize_is_refused_in_one_line(
    overrides: list[str], message: str, tmp_path: Path, data_root: Path
) -> None:
    args = ["task=mlp_housing", "max_steps=5", "vectorize=true", f"data.root={data_root}"]
    with pytest.raises(cli.UsageError) as refused:
        main.checked_args([*args, *overrides])
    assert message in str(refused.value) and "\n" not in str(refused.value)


RESUME_ARGS = [
    *("task=mlp_housing", "optimizer=sgdo", "trainer=debug", "precision=high", "logger=csv"),
    *("task.sgd.batch_size=64", "max_steps=400", "vectorize=true"),
    *("members.seed=[1,2]", "members.overshoot=[3,5]"),
]


def start(cwd: Path, root: Path, experiment: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, MAIN, *RESUME_ARGS, f"experiment_name={experiment}"],
        cwd=cwd,
        env={**os.environ, "OVERSHOOT_DATA": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def member_folders(cwd: Path, experiment: str) -> list[Path]:
    return [
        RunPath(experiment, "mlp_housing", f"sgdo_g{g}", s).folder(cwd / "results")
        for g in (3, 5)
        for s in (1, 2)
    ]


@pytest.mark.slow
def test_killed_jobs_resume_every_member_bit_for_bit(data_root: Path, tmp_path: Path) -> None:
    whole = start(tmp_path, data_root, "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()[-2000:] if whole.stderr else ""

    folders = member_folders(tmp_path, "cut")
    ckpt = last_checkpoint(job_folder(folders))
    first = start(tmp_path, data_root, "cut")
    stop_after_checkpoint(first, ckpt, signal.SIGTERM)
    assert first.returncode == 130
    for folder in folders:
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["status"] == "interrupted" and 0 < meta["stopped_at_step"] < 400

    second = start(tmp_path, data_root, "cut")  # resumes, then dies without cleaning up
    stop_after_checkpoint(second, ckpt, signal.SIGKILL)

    third = start(tmp_path, data_root, "cut")
    assert third.wait(timeout=300) == 0, third.stderr.read()[-2000:] if third.stderr else ""
    for cut, uncut in zip(folders, member_folders(tmp_path, "whole"), strict=True):
        meta = json.loads((cut / "meta.json").read_text())
        assert meta["status"] == "finished" and len(meta["resumed_at_steps"]) == 2
        for name in ("steps.csv", "evals.csv"):
            a, b = pd.read_csv(uncut / name), pd.read_csv(cut / name)
            pd.testing.assert_frame_equal(
                a.drop(columns=TIMES, errors="ignore"),
                b.drop(columns=TIMES, errors="ignore"),
                check_exact=True,
            )
        assert len(pd.read_csv(cut / "steps.csv")) == 400
    assert not ckpt.exists()  # every member ended: the job keeps no checkpoint


def test_a_multiruns_seeds_and_gammas_become_the_members_of_one_job() -> None:
    args = ["-m", "task=mlp_housing", "seed=range(3)", "optimizer.overshoot=3,5"]
    assert sweeps.vectorized(args) == args  # without the switch: one job per seed and γ
    rewritten = sweeps.vectorized([*args, "vectorize=true"])
    assert {"seed=0", "members.seed=[0,1,2]", "members.overshoot=[3,5]"} <= set(rewritten)
    assert "seed=range(3)" not in rewritten
    grid = sweeps.vectorized(["-m", "experiment=paper_cpu", "vectorize=true"])  # its own sweep
    assert {"members.seed=[0,1,2,3,4,5,6,7,8,9]", "members.overshoot=[3,5,7]"} <= set(grid)
    rates = sweeps.vectorized([*args, "task.sgd.lr=0.002,0.004", "vectorize=true"])
    assert {"task.sgd.lr=0.002", "members.lr.sgd=[0.002,0.004]"} <= set(rates)


def test_the_switch_runs_one_job_from_the_command_line(data_root: Path, tmp_path: Path) -> None:
    args = ["-m", "task=mlp_housing", "seed=0,1", "vectorize=true", "max_steps=5", "trainer=debug"]
    proc = run_main(args, tmp_path, data_root)
    assert "status: 2 finished (members) after 5 steps" in proc.stdout
    assert "Launching 1 jobs" in proc.stdout + proc.stderr
    logs = set()
    for seed in (0, 1):
        folder = RunPath("test", "mlp_housing", "sgdo_g5", seed).folder(tmp_path / "results")
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["status"] == "finished" and meta["members"] == 2
        assert meta["step_time_s"] == pytest.approx(meta["job_step_time_s"] / 2, rel=1e-9)
        assert meta["vectorized"] is True
        assert any((tmp_path / meta["logs"]).glob("events.out.tfevents.*"))  # its own run
        logs.add(meta["logs"])
    assert len(logs) == 2


@pytest.mark.parametrize(("ours", "baseline"), [("sgdo", "sgd_momentum"), ("adamo", "adamw")])
def test_gamma_zero_members_record_their_baselines_curve(
    ours: str, baseline: str, data_root: Path, tmp_path: Path
) -> None:
    overrides = [*common("mlp_housing", data_root), "max_steps=200"]
    job = [f"optimizer={ours}", "vectorize=true", "members.seed=[1]", "members.overshoot=[0,5]"]
    member = Path(run(tmp_path, [*overrides, *job], "vec")["members"][0]["results"])
    assert member.parent.name == f"{ours}_g0"
    separate = Path(
        run(tmp_path, [*overrides, f"optimizer={baseline}", "seed=1"], "sep")["results"]
    )
    a, b = pd.read_csv(member / "steps.csv"), pd.read_csv(separate / "steps.csv")
    for column in ("loss", "loss_base"):
        np.testing.assert_allclose(a[column], b[column], rtol=1e-10, atol=0)


def test_conv_members_on_the_cpu_train_apart_as_their_separate_runs(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where a model's members run slower than its separate runs (conv on a CPU), vectorize=true
    trains them as separate one-thread runs, as many side by side as the process had threads,
    says so, and each is the run its own command trains (which then finds it done)."""
    args = ["task=2c2d_fmnist", "max_steps=8", f"data.root={data_root}", "precision=high"]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # two worker processes, one thread each
    try:
        summary = run(tmp_path, [*args, "vectorize=true", "members.seed=[1,2]"], "vec")
    finally:
        assert torch.get_num_threads() == 2  # given back
        torch.set_num_threads(threads)
    assert capsys.readouterr().out.startswith(
        "vectorize=true: 2 separate runs, 2 at a time, one thread each: conv members ran 0.73× "
        "(2c2d) and 0.84× (VAE) as fast as separate runs side by side on a 2-core CPU "
        "(members.apart=false vectorizes anyway)\n"
    )
    assert [m["status"] for m in summary["members"]] == ["finished"] * 2
    for seed, member in zip((1, 2), summary["members"], strict=True):
        folder = Path(member["results"])
        meta = json.loads((folder / "meta.json").read_text())
        assert (meta["vectorized"], meta["cpu_threads"], meta["steps"]) == (False, 1, 8)
        own = OmegaConf.load(folder / "config.yaml")
        assert (own.seed, own.vectorize, own.members.seed) == (seed, False, None)
        again = run(tmp_path, [*args, f"seed={seed}"], "vec")  # the same run: done
        assert again["status"] == "finished (already; force=true to re-run)"
        assert_same_run(folder, Path(run(tmp_path, [*args, f"seed={seed}"], "sep")["results"]))
    members = run(
        tmp_path, [*args, "vectorize=true", "members.seed=[1]", "members.apart=false"], "m"
    )
    assert json.loads((Path(members["members"][0]["results"]) / "meta.json").read_text())[
        "vectorized"
    ]  # asked for, members they are


def test_ended_members_stop_costing_and_change_no_survivor(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tuning grid's large rate diverges; from then on the job computes the other rates
    alone, and they record, bit for bit in float32, what they record when the diverged member
    keeps computing beside them (as it did before)."""
    from trainers.members.stacked import Members

    overrides = ["task=mlp_housing", "max_steps=300", f"data.root={data_root}", "vectorize=true"]
    overrides += ["optimizer=sgd_momentum", "members.lr.sgd=[0.01,2.0,0.02]", "lr_in_label=true"]
    computed: list[int] = []  # members computed by each training forward
    forward = Members.forward

    def counted(self: Members, x: torch.Tensor) -> torch.Tensor:
        out = forward(self, x)
        computed.append(len(out)) if self.training else None
        return out

    monkeypatch.setattr(Members, "forward", counted)
    dropping = run(tmp_path, overrides, "drop")
    assert [m["status"] for m in dropping["members"]] == ["finished", "diverged", "finished"]
    assert computed[0] == 3 and computed[-1] == 2 and computed.count(2) > len(computed) // 2
    monkeypatch.setattr(Members, "keep", lambda self, live: None)  # the ended keep computing
    computed.clear()
    keeping = run(tmp_path, overrides, "keep")
    assert set(computed) == {3}
    for ours, theirs in zip(dropping["members"], keeping["members"], strict=True):
        a, b = Path(ours["results"]), Path(theirs["results"])
        for name in ("steps.csv", "evals.csv"):
            pd.testing.assert_frame_equal(
                pd.read_csv(a / name).drop(columns=TIMES, errors="ignore"),
                pd.read_csv(b / name).drop(columns=TIMES, errors="ignore"),
                check_exact=True,
            )
        meta = [json.loads((f / "meta.json").read_text()) for f in (a, b)]
        assert meta[0]["diverged_at_step"] == meta[1]["diverged_at_step"]
        if ours["status"] == "finished":
            held, kept = (torch.load(last_checkpoint(f))["state_dict"] for f in (a, b))
            for key in held:
                assert torch.equal(held[key], kept[key]), key


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_an_mlps_members_as_batched_products_equal_vmap(task: str) -> None:
    """An MLP's members run as batched matrix products (``TaskModel.member_layers``) and their
    losses and metrics straight on the stacked outputs: the same numbers as vmap over the
    model's own forward, loss and metrics, in training (a batch per member) and evaluation
    (one batch for all), with ended members left out."""
    from models.mlp import MLP
    from trainers.members.stacked import Members

    torch.manual_seed(0)
    sizes, classes = [6, 5, 4, 3], task == "classification"
    models = [MLP(sizes, task).double() for _ in range(3)]
    direct, generic = Members(models), Members(models)
    generic.layers = None  # vmap over functional_call, the path every other model takes
    x = torch.randn(3, 7, 2, 3, dtype=torch.float64)  # Flatten turns (2, 3) into 6
    y = torch.randint(0, 3, (3, 7)) if classes else torch.randn(3, 7, 3, dtype=torch.float64)
    for live in (None, [0, 2]):
        for members in (direct, generic):
            if live:
                members.keep(live)
        for training in (True, False):
            direct.train(training), generic.train(training)
            inputs, targets = (x, y) if training else (x[1], y[1])
            ours, theirs = direct(inputs), generic(inputs)
            torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)
            torch.testing.assert_close(
                direct.loss(ours, targets),
                generic.loss(theirs, targets),
                rtol=1e-12,
                atol=0,
                equal_nan=True,
            )
            ours_m, theirs_m = direct.metrics(ours, targets), generic.metrics(theirs, targets)
            assert ours_m.keys() == theirs_m.keys() == ({"accuracy"} if classes else set())
            for k in ours_m:
                torch.testing.assert_close(ours_m[k], theirs_m[k], equal_nan=True)
