"""End-to-end runs of main.py: reference equivalences on housing, every task x family, results."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from tests.fake_data import (
    write_cifar,
    write_energy,
    write_housing,
    write_mnist,
)
from tests.launch import main_config, run_main
from tests.test_large_tasks import CASES as LARGE_CASES
from trainers import cli
from trainers.results import RunPath
from trainers.train import train

ROOT = Path(__file__).resolve().parents[1]

SHARED = os.environ.get("OVERSHOOT_DATA", "")


@pytest.fixture(scope="module")
def housing_root(tmp_path_factory: pytest.TempPathFactory) -> Path | str:
    """The real data in CI (../shared/data), else a file in the real format."""
    if SHARED and (Path(SHARED) / "california_housing").is_dir():
        return SHARED
    return write_housing(tmp_path_factory.mktemp("data"), n=2000)


def steps(cwd: Path, optimizer_label: str, experiment: str = "eq") -> pd.DataFrame:
    return pd.read_csv(
        RunPath(experiment, "mlp_housing", optimizer_label, 1).folder(cwd / "results") / "steps.csv"
    )


def run_in_process(argv: list[str], tmp_path: Path, data_root: Path | str) -> None:
    """``python main.py ARGV`` (one run) as main.py composes and checks it, in this process."""
    summary = train(main_config(argv, tmp_path / "results", data_root))
    assert summary["status"] == "finished", summary


def housing_args(*config_overrides: str) -> list[str]:
    """Reference flags of the housing equivalence runs (seed 1, float64)."""
    return [
        *("--model", "mlp", "--dataset", "housing", "--seed", "1", "--experiment_name", "eq"),
        "trainer=debug",
        *("--config_override", "precision=high", *config_overrides),
    ]


@pytest.mark.slow
def test_reference_equivalences_on_housing(tmp_path: Path, housing_root: Path | str) -> None:
    common = housing_args("max_steps=160")
    run_in_process(
        [*common, "--opt_name", "sgd_momentum", "--two_models", "--overshoot_factor", "0.9"],
        tmp_path,
        housing_root,
    )
    run_in_process(
        [*common, "--opt_name", "sgd_overshoot", "--overshoot_factor", "0.9"],
        tmp_path,
        housing_root,
    )
    two, eff = steps(tmp_path, "sgd_momentum_two_models_g0.9"), steps(tmp_path, "sgdo_g0.9")
    assert len(two) == len(eff) == 160
    for col in ("loss", "loss_base"):
        pd.testing.assert_series_equal(two[col], eff[col], rtol=1e-12, atol=0)
    # Measured before each update: at step 1 nothing has moved yet, so θ′ = θ; after that never.
    assert eff["loss"][0] == eff["loss_base"][0]
    assert (eff["loss"][1:] != eff["loss_base"][1:]).all()

    run_in_process(
        [*common, "--opt_name", "adamW", "--two_models", "--overshoot_factor", "10"],
        tmp_path,
        housing_root,
    )
    run_in_process(
        [*common, "--opt_name", "adamW_overshoot_replication", "--overshoot_factor", "10"],
        tmp_path,
        housing_root,
    )
    two, wrap = (
        steps(tmp_path, "adamw_two_models_g10"),
        steps(tmp_path, "adamw_overshoot_replication_g10"),
    )
    for col in ("loss", "loss_base"):
        pd.testing.assert_series_equal(two[col], wrap[col], rtol=1e-12, atol=0)


@pytest.mark.slow
def test_nesterov_is_sgdo_with_gamma_mu_bit_for_bit(
    tmp_path: Path, housing_root: Path | str
) -> None:
    """Exact with a constant rate. Under a schedule torch's Nesterov is not Overshoot(γ=μ):
    its shift uses the new rate; SGDO (exact) follows the two-model definition instead."""
    common = housing_args("max_steps=450", "use_lr_scheduler=false")
    run_in_process([*common, "--opt_name", "sgd_nesterov"], tmp_path, housing_root)
    run_in_process(
        [*common, "--opt_name", "sgd_overshoot", "--overshoot_factor", "0.9"],
        tmp_path,
        housing_root,
    )
    nag, sgdo = steps(tmp_path, "sgd_nesterov"), steps(tmp_path, "sgdo_g0.9")
    assert len(nag) == 450
    assert (nag["loss"].to_numpy() == sgdo["loss"].to_numpy()).all()


# As configured these are too large for a CPU test: tests/test_large_tasks.py runs them shrunk.
LARGE = set(LARGE_CASES)


@pytest.mark.slow
def test_every_task_and_family_runs_and_writes_results(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST")
    write_housing(root)
    write_energy(root)
    write_cifar(root, 10)
    plain = ",".join(t for t in cli.choices("task") if t not in LARGE)
    common = ["optimizer=sgdo,adamo", "max_steps=6", "trainer=debug", "experiment_name=all"]
    run_main(["-m", f"task={plain}", *common, "task.epochs=1"], tmp_path, root)
    for task in plain.split(","):
        for label in ("sgdo_g5", "adamo_g5"):
            run = RunPath("all", task, label, 0).folder(tmp_path / "results")
            meta = json.loads((run / "meta.json").read_text())
            assert meta["status"] == "finished", (task, label)
            assert meta["steps"] == 6
            df = pd.read_csv(run / "steps.csv")
            assert list(df["step"]) == list(range(1, 7)), task
            assert df["loss"].notna().all() and df["loss_base"].notna().all()
            # Measured before each update. SGDO: θ′ = θ until the first step, then apart.
            # AdamO: γ = 0 through its 50-step delay, so θ′ = θ for all 6 steps.
            same = (df["loss"] == df["loss_base"]).tolist()
            assert same[0] and not all(same[1:]) if label == "sgdo_g5" else all(same), task
            evals = pd.read_csv(run / "evals.csv")
            assert "test" in set(evals["stage"])
            assert OmegaConf.load(run / "config.yaml").task.name == task
            assert not list(run.glob("*.part"))
    logs = tmp_path / "lightning_logs" / "all"  # each run's TensorBoard name says what ran
    for task in plain.split(","):
        assert list(logs.glob(f"{task}_sgdo_g5_seed0/version_*/events.out.tfevents.*")), task


@pytest.mark.slow
def test_embedded_default_runs_offline_and_prints_summary(tmp_path: Path) -> None:
    proc = run_main(["max_steps=30"], tmp_path, tmp_path / "nothing-here")
    assert "status: finished after 30 steps" in proc.stdout
    assert "test/loss at base weights" in proc.stdout
    assert "tensorboard --logdir lightning_logs" in proc.stdout
    assert (
        RunPath("test", "mlp_diabetes", "sgdo_g5", 0).folder(tmp_path / "results") / "steps.csv"
    ).is_file()
    assert "LeafSpec" not in proc.stderr  # Lightning's deprecated torch call, printed every run
    assert "litlogger" not in proc.stdout + proc.stderr  # Lightning's advertisement, every run


@pytest.mark.slow
def test_the_readmes_quick_comparison_reads_like_a_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's two commands, as written: both sides cross T in every seed, the saving and
    its interval are numbers, and the table is the one the README shows."""
    from scripts.report import main as report_main

    text = (ROOT / "README.md").read_text()
    block = text[text.index("The comparison in two commands") :]
    lines = block.split("```bash\n")[1].splitlines()[:2]
    sweep, report = (shlex.split(line, comments=True) for line in lines)
    first = run_main(sweep[2:], tmp_path, tmp_path)
    jobs = [
        line.split(" : ")[1].split()[:2] for line in first.stdout.splitlines() if "] \t#" in line
    ]
    assert jobs == [  # each seed's pair back to back, though the command gives seed last
        [f"seed={seed}", f"optimizer={name}"]
        for seed in range(3)
        for name in ("sgd_momentum", "sgdo")
    ]
    table = first.stdout[first.stdout.index("steps to 0.95 of the baseline's loss reduction") :]
    assert "nan" not in table and "not reached" not in table and "censored=0" in table
    shown = block.split("```\n")[2].split("```")[0]  # the table the README prints
    got = {line.split()[1]: line.split() for line in table.splitlines()[1:3]}
    *crossings, time = shown.strip().splitlines()
    assert time.startswith("  time, mlp_diabetes: sgdo_g5 / sgd_momentum step time ")
    for line in crossings:  # the crossings to within 1 % (float32 elsewhere)
        words = line.split()
        assert float(got[words[1]][2]) == pytest.approx(float(words[2]), rel=0.01), line
        assert got[words[1]][3:5] == words[3:5] == ["n=3", "censored=0"], line
    archive = pd.read_parquet(tmp_path / "results/quick/archive/runs.parquet")  # the sweep's
    assert sorted(archive["optimizer"]) == ["sgd_momentum"] * 3 + ["sgdo_g5"] * 3
    monkeypatch.chdir(tmp_path)
    report_main([*report[2:], "--tensorboard", ""])
    printed = capsys.readouterr().out
    assert "nan" not in printed and time.split("step time")[0] + "step time" in printed
    assert (tmp_path / "results/quick/report/mlp_diabetes/loss_curves.png").is_file()


def test_meta_records_the_cpu_threads_a_run_had(tmp_path: Path, housing_root: Path | str) -> None:
    """Float32 CPU results depend on the thread count: a parallel sweep's joblib workers get
    ``cpu_count // n_jobs`` threads each, which meta.json must say so a run can be redone."""
    import joblib

    common = ["task=mlp_housing", "optimizer=sgd_momentum", "max_steps=3", "trainer=debug"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # not the suite's 1: the counts must differ
    run_main([*common, "seed=2"], tmp_path, housing_root, environ=env)
    threads = {2: 2}
    per_worker = joblib.cpu_count() // 2
    if per_worker > 1:  # on 2 cores a worker's 1 is the suite's 1 too: nothing to tell apart
        sweep = ["-m", *common, "seed=0,1", "hydra/launcher=local_parallel"]
        run_main(sweep, tmp_path, housing_root)
        threads |= {0: per_worker, 1: per_worker}
    for seed, expected in threads.items():
        run = RunPath("test", "mlp_housing", "sgd_momentum", seed).folder(tmp_path / "results")
        meta = json.loads((run / "meta.json").read_text())
        assert meta["cpu_threads"] == expected, seed
