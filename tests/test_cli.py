"""Reference flags → Hydra overrides, and bad input → one line, exit status 2."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import main
from tests.launch import main_refuses
from trainers import cli
from trainers.cli import sweeps
from trainers.results import RunPath

MAIN = str(Path(main.__file__).resolve())


def overrides(argv: list[str]) -> list[str]:
    translated, rest = cli.split_argv(argv)
    return translated + rest


def test_reference_flags_translate_in_one_place() -> None:
    got = overrides(
        [
            "--model",
            "mlp",
            "--dataset",
            "housing",
            "--opt_name",
            "sgd_overshoot",
            "--overshoot_factor",
            "0.9",
            "--seed",
            "1",
            "--config_override",
            "precision=high",
            "max_steps=160",
            "lr=0.1",
            "B=16",
            "use_lr_scheduler=0",
            "--experiment_name",
            "e",
            "--job_name",
            "j",
            "--no-compute_base_model_loss",
        ]
    )
    assert got == [
        "task=mlp_housing",
        "optimizer=sgdo",
        "optimizer.overshoot=0.9",
        "seed=1",
        "experiment_name=e",
        "job_name=j",
        "compute_base_model_loss=false",
        "precision=high",
        "max_steps=160",
        "task.sgd.lr=0.1",
        "task.sgd.batch_size=16",
        "task.cosine=false",
    ]


def test_family_specific_keys_follow_the_optimizer() -> None:
    got = overrides(
        [
            "--opt_name",
            "adamW_overshoot_delayed",
            "--config_override",
            "lr=0.5",
            "overshoot_delay=0",
        ]
    )
    assert got == ["optimizer=adamo", "task.adam.lr=0.5", "optimizer.factory.overshoot_delay=0"]


def test_hydra_overrides_pass_through_and_mix() -> None:
    got = overrides(["--opt_name", "sgd_momentum", "--two_models", "task=mlp_energy", "seed=3"])
    assert got == ["optimizer=sgd_momentum", "two_models=true", "task=mlp_energy", "seed=3"]


def test_shakespear_alias_is_accepted_by_name() -> None:
    """The reference spells it "shakespear"; both spellings name the shakespeare tasks."""
    for dataset in ("shakespear", "shakespeare"):
        for model in ("gpt", "gpt_tiny"):
            got = overrides(["--model", model, "--dataset", dataset])
            assert got == [f"task={model}_shakespeare"], dataset
    with pytest.raises(cli.UsageError, match="no task for --model mlp --dataset shakespear"):
        cli.split_argv(["--model", "mlp", "--dataset", "shakespear"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "mlpx", "--dataset", "mnist"], "unknown model 'mlpx'; valid: mlp, 2c2d"),
        (["--model", "mlp", "--dataset", "mnistx"], "unknown dataset 'mnistx'; valid: mnist"),
        (["--opt_name", "sgdx"], "unknown optimizer 'sgdx'; valid: "),
        (["task=nope"], "unknown task 'nope'; valid: 2c2d_fmnist"),
        (["-m", "optimizer=sgdo,adamx"], "unknown optimizer 'adamx'; valid: adam"),
        (["--config_override", "foo=1"], "'foo=1': expected KEY=VALUE with KEY one of precision"),
        (["--config_override", "max_steps=ten"], "max_steps=ten: expected a int"),
        (
            ["--config_override", "use_lr_scheduler=maybe"],
            "use_lr_scheduler=maybe: expected true or false",
        ),
        (["--config_override", "precision=half"], "precision=half: valid values are high"),
        (["--overshoot_factor", "-1"], "--overshoot_factor -1.0: must be >= 0"),
        (["lr=-1"], "Could not override 'lr': Key 'lr' is not in struct (KEY=VALUE sets"),
        (["max_steps=-5"], "max_steps=-5: expected a positive integer or null"),
        (["max_steps=ten"], "max_steps='ten': expected a positive integer or null"),
        (["seed=abc"], "seed='abc': expected a non-negative integer"),
        (["task.sgd.lr=abc"], "task.sgd.lr='abc': expected a number"),
        (["task.sgd.batch_size=1.5"], "task.sgd.batch_size=1.5: expected a positive integer"),
        (["optimizer.overshoot=five"], "optimizer.overshoot='five': expected a number >= 0"),
        (["optimizer.overshoot=-2"], "optimizer.overshoot=-2: expected a number >= 0"),
        (["-m", "task.sgd.lr=0.1,abc"], "task.sgd.lr='abc': expected a number"),
        (["--compute_cosine"], "--compute_cosine: cosine similarities are not computed here"),
        (
            ["-m", "optimizer=sgdo,adamo", "task.adam.lr=0.1,abc"],
            "task.adam.lr='abc': expected a number",
        ),
        (
            ["-m", "experiment=paper_cpu", "optimizer.overshoot=3,-1"],
            "optimizer.overshoot=-1: expected a number >= 0",
        ),
    ],
)
def test_bad_input_is_refused_in_one_line_before_anything_runs(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cli.UsageError) as refused:
        main.checked_args(argv)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--opt_name", "sgdx"], "unknown optimizer 'sgdx'; valid: "),
        (["-m", "task.sgd.lr=0.1,abc"], "task.sgd.lr='abc': expected a number"),
        (["--opt_nme", "sgdo"], "unknown flag --opt_nme: did you mean --opt_name? valid: "),
        (["--opt", "sgdo"], "unknown flag --opt: did you mean --opt_name? valid: "),
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    lines = main_refuses(argv, tmp_path)
    assert len(lines) == 1 and lines[0].startswith("main.py: error: ") and message in lines[0]
    assert not any(tmp_path.iterdir())


def test_a_sweep_is_checked_one_value_at_a_time() -> None:
    variants = sweeps.sweep_variants(["a=1,2", "b=x"], {"c": "range(2)", "a": "9"})
    assert variants == [["c=0", "a=1", "b=x"], ["c=1", "a=1", "b=x"], ["c=0", "a=2", "b=x"]]
    assert sweeps.sweep_variants(["lr=interval(0.001,1)"], {}) is None  # sampled, not listed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config_override", "lr=-1"], "task.sgd.lr=-1: expected a number >= 0"),
        (["task.adam.lr=-0.1"], "task.adam.lr=-0.1: expected a number >= 0"),
        (
            ["--opt_name", "sgd_overshoot", "--config_override", "sgd_momentum=0"],
            "Invalid momentum: 0 with overshoot 5: overshoot needs momentum > 0",
        ),
        (["results_dir=/proc/nope"], "cannot write results to /proc/nope/test/mlp_diabetes"),
        (
            ["optimizer=adam", "optimizer.factory.betas=3"],
            "optimizer adam rejects its settings: 'int' object is not subscriptable",
        ),
    ],
)
def test_bad_values_exit_2_before_any_result(argv: list[str], message: str, tmp_path: Path) -> None:
    lines = main_refuses(argv, tmp_path)
    assert message in lines[-1], lines
    assert not (tmp_path / "results").exists() and not (tmp_path / "lightning_logs").exists()


def test_ddp_on_the_cpu_needs_a_process_count(tmp_path: Path) -> None:
    lines = main_refuses(["trainer=ddp", "trainer.accelerator=cpu", "max_steps=5"], tmp_path)
    assert lines[-1] == (
        "main.py: error: trainer=ddp on the CPU would run one process: "
        "set how many with trainer.devices=N"
    )
    assert not list(tmp_path.glob("results/**/seed=*"))


def test_rerun_skips_what_is_done_and_refuses_other_settings(tmp_path: Path) -> None:
    """A finished run is skipped (names and where logs go are not settings), a run with other
    settings is refused and the stored run kept, ``force=true`` replaces it; a run measured by
    an older harness (no results_version) is not skipped as done."""
    from tests.launch import config
    from trainers.train import train

    def run(*overrides: str) -> dict[str, Any]:
        return train(config(tmp_path, ["max_steps=5", *overrides]))

    assert run()["status"] == "finished"
    meta = next(tmp_path.glob("results/**/meta.json"))
    before = meta.read_text()
    skipped = run("job_name=other", "logger=csv")
    assert skipped["status"] == "finished (already; force=true to re-run)"
    assert meta.read_text() == before
    with pytest.raises(ValueError) as refused:
        run("task.sgd.lr=0.02")
    assert str(refused.value) == (
        f"{meta.parent} holds a run with other settings (optimizer.factory.lr: 0.01 there, "
        "0.02 now); use another experiment_name, or force=true to replace it"
    )
    assert meta.read_text() == before
    assert run("task.sgd.lr=0.02", "force=true")["status"] == "finished"
    assert meta.read_text() != before

    old = {k: v for k, v in json.loads(meta.read_text()).items() if k != "results_version"}
    meta.write_text(json.dumps(old))
    before = meta.read_text()
    with pytest.raises(ValueError, match=r"results version 1, not 2 \(measured by another"):
        run("task.sgd.lr=0.02")
    assert meta.read_text() == before


@pytest.mark.slow
def test_a_job_that_cannot_run_fails_alone_in_a_multirun(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cmd = [sys.executable, MAIN, "-m", "task=mlp_housing,mlp_diabetes", "trainer=debug"]
    cmd += ["max_steps=5", f"data.root={empty}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert "Error executing job with overrides: ['task=mlp_housing'" in proc.stderr
    assert "missing data file" in proc.stderr and "Traceback" not in proc.stderr
    meta = RunPath("test", "mlp_diabetes", "sgdo_g5", 0).folder(tmp_path / "results") / "meta.json"
    assert '"status": "finished"' in meta.read_text()
    # Hydra skips on_multirun_end after a failed job; the table of what ran comes at exit.
    summary = proc.stdout[proc.stdout.index("steps to 0.95") :]
    assert "  mlp_diabetes " in summary and "mlp_housing" not in summary
    assert not (tmp_path / "results" / "test" / "mlp_housing").exists()  # no empty folder
    results = Path("results/test")
    assert summary.rstrip().endswith(
        f"full report: python scripts/report.py {results} {results / 'archive'}"
    )


def test_a_multirun_where_no_job_finds_its_data_is_refused_before_any_job(tmp_path: Path) -> None:
    env = {"OVERSHOOT_DATA": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin"}
    lines = main_refuses(["-m", "task=mlp_housing", "seed=0,1", "trainer=debug"], tmp_path, env)
    assert len(lines) == 1 and lines[0].startswith(
        "main.py: error: no job of this multirun finds its data: missing data file "
    )
    assert not any(tmp_path.iterdir())


def test_missing_data_file_exits_2_naming_the_file(tmp_path: Path) -> None:
    env = {"OVERSHOOT_DATA": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin"}
    last = main_refuses(["task=mlp_housing", "trainer=debug"], tmp_path, env)[-1]
    assert "missing data file" in last and "cal_housing.data" in last and "OVERSHOOT_DATA" in last


def test_help_lists_tasks_and_optimizers(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, MAIN, "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0
    assert "mlp_housing" in proc.stdout and "adamw_overshoot_replication" in proc.stdout


def test_list_optimizers_gives_every_config_one_described_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, MAIN, "--list-optimizers"], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == cli.choices("optimizer")
    assert all(len(line.split(maxsplit=1)[1]) > 10 for line in lines)
    by_name = {line.split()[0]: line for line in lines}
    assert "[--opt_name sgd_overshoot]" in by_name["sgdo"]
    assert "McRae" in by_name["adam_c"] and "Lookahead" in by_name["lookahead_sgd"]
    described = [re.sub(r"( \[[^]]*\])+$", "", line) for line in lines]  # notes cut
    assert all(d.endswith(".") for d in described), [d for d in described if not d.endswith(".")]


def test_a_run_held_by_another_process_is_skipped(tmp_path: Path) -> None:
    """Parallel jobs of one grid never write the same results folder."""
    from filelock import FileLock

    from tests.launch import config
    from trainers.train import train

    cfg = config(tmp_path, ["max_steps=5"])
    folder = RunPath("peers", "mlp_diabetes", "sgdo_g5", 0).folder(tmp_path / "results")
    folder.mkdir(parents=True)
    with FileLock(folder / ".lock"):  # another process's lock (flock: per open file)
        summary = train(cfg)
    assert summary["status"] == "running in another process; skipped"
    assert [p.name for p in folder.iterdir()] == [".lock"]


def test_a_float32_run_counts_as_done_only_where_it_would_compute_alike(tmp_path: Path) -> None:
    """Kernels, CPU threads and device set a float32 run's summation order: a relaunch that
    would compute otherwise is refused in one line (any_compute=true accepts the run); a
    float64 run counts as done whatever computed it."""
    import torch

    from tests.launch import config
    from trainers.train import train

    base = ["max_steps=5"]
    assert train(config(tmp_path, base))["status"] == "finished"
    meta = next(tmp_path.glob("results/**/meta.json"))
    before = meta.read_text()
    threads = torch.get_num_threads()
    ran = f"kernels=fused on CPU {torch.backends.cpu.get_cpu_capability()}, {threads} threads"
    with pytest.raises(ValueError) as refused:
        train(config(tmp_path, [*base, "kernels=single"]))
    assert str(refused.value) == (
        f"{meta.parent} holds a float32 run computed with {ran}; this run would use "
        f"{ran.replace('fused', 'single')}, and float32 numbers differ between the two (a "
        "crossing moves as far as with another seed): any_compute=true counts it as done, "
        "force=true replaces it, or use another experiment_name"
    )
    torch.set_num_threads(threads + 1)
    try:
        with pytest.raises(ValueError, match=f"{threads + 1} threads, and float32"):
            train(config(tmp_path, base))
    finally:
        torch.set_num_threads(threads)
    accepted = train(config(tmp_path, [*base, "kernels=single", "any_compute=true"]))
    assert accepted["status"].startswith("finished (already")
    assert meta.read_text() == before

    float64 = [*base, "precision=high"]
    assert train(config(tmp_path, float64, "f64"))["status"] == "finished"
    again = train(config(tmp_path, [*float64, "kernels=single"], "f64"))
    assert again["status"].startswith("finished (already")


def test_ctrl_c_while_starting_is_one_line_and_status_130(tmp_path: Path) -> None:
    """SIGINT during the seconds of imports and checks before a run starts: no traceback."""
    proc = subprocess.Popen(
        [sys.executable, MAIN, "task=mlp_diabetes", "max_steps=5"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert proc.stderr is not None
    assert proc.stderr.read() == "main.py: interrupted while starting; nothing was written\n"
    assert not any(tmp_path.iterdir())


def test_each_seeds_optimizers_run_back_to_back_whatever_the_order_given() -> None:
    """The README's order (seed last) made Hydra run every baseline seed before any Overshoot
    seed; the jobs as Hydra's own sweeper orders them now pair by seed."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = main.checked_args(["-m", "optimizer=adamw,adamo", "optimizer.overshoot=0", "seed=0,1"])
    assert args[0] == "-m"  # Hydra's parser takes the overrides as one run of arguments
    overrides = OverridesParser.create().parse_overrides([a for a in args if "=" in a])
    (jobs,) = BasicSweeper.split_arguments(overrides, None)
    order = [(job[0], job[1]) for job in jobs]
    assert order == [
        ("seed=0", "optimizer=adamw"),
        ("seed=0", "optimizer=adamo"),
        ("seed=1", "optimizer=adamw"),
        ("seed=1", "optimizer=adamo"),
    ]


def test_an_ad_hoc_runs_logs_are_named_for_what_it_ran(tmp_path: Path) -> None:
    """TensorBoard lists runs by job name: task, optimizer, γ and seed, not 'test' for all."""
    from tests.launch import main_config

    cfg = main_config(["optimizer=adamo", "seed=3"], tmp_path, tmp_path)
    assert cfg.job_name == "mlp_diabetes_adamo_g5_seed3"
    cfg = main_config(["--opt_name", "sgd_momentum", "--job_name", "mine"], tmp_path, tmp_path)
    assert cfg.job_name == "mine"
