"""scripts/report.py on synthetic results folders whose crossing steps are known by hand."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts.collect import load_runs
from scripts.report import add_wall_clock
from scripts.report import main as report_main
from scripts.threshold import (
    ci95,
    mean_over_tasks,
    one_sample_p,
    steps_summary,
    steps_to_threshold,
    trailing_mean,
)
from trainers.results import RESULTS_VERSION, RunPath

ROOT = Path(__file__).resolve().parent.parent
REPORT = str(ROOT / "scripts" / "report.py")
STEPS = np.arange(1, 101)


def write_run(
    root: Path,
    optimizer: str,
    seed: int,
    loss: np.ndarray,
    status: str = "finished",
    family: str = "sgd",
    test_loss: float = 1.0,
    step_time_s: float = 0.01,
    task: str = "task_a",
    meta: dict[str, object] | None = None,
) -> None:
    run = RunPath(root.name, task, optimizer, seed).folder(root.parent)
    run.mkdir(parents=True)
    config = f"optimizer:\n  name: {optimizer}\n  family: {family}\nkernels: fused\n"
    (run / "config.yaml").write_text(config)
    meta = {
        "status": status,
        "steps": len(loss),
        "step_time_s": step_time_s,
        "results_version": RESULTS_VERSION,
        "device": "cpu",
        "device_name": "CPU AVX512",
        "cpu_threads": 2,
        **(meta or {}),
    }
    (run / "meta.json").write_text(json.dumps(meta))
    if status == "running":
        return
    # ``loss`` (at the held weights) reversed: a report reading it instead of ``loss_base``
    # finds other crossings everywhere
    steps = pd.DataFrame(
        {"step": np.arange(1, len(loss) + 1), "loss": loss[::-1], "loss_base": loss}
    )
    steps.to_csv(run / "steps.csv", index=False)
    evals = pd.DataFrame([{"stage": "test", "epoch": 0, "step": len(loss), "loss": test_loss}])
    evals.to_csv(run / "evals.csv", index=False)


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Baseline: loss 100 − step; window 1 leaves the last step out, so a = 99 … 1 and
    T(0.95) = 99 − 0.95·98 = 5.9 → index 94. ``fast``: a = 98 − 2k → index 47."""
    root = tmp_path / "exp"
    for seed in range(3):
        write_run(root, "sgd_momentum", seed, 100.0 - STEPS, test_loss=2.0 + seed)
        write_run(root, "never", seed, np.full(100, 100.0), test_loss=9.0)
    for seed in range(2):  # unequal seed counts: fast has seeds 0 and 1 only
        fast = np.clip(100.0 - 2 * STEPS, 0, None)
        write_run(root, "fast", seed, fast, test_loss=1.0 + seed, step_time_s=1 / (40 + 20 * seed))
    diverged = [*np.clip(100.0 - 2 * STEPS[:10], 0, None).tolist(), math.nan]
    write_run(root, "fast_diverged", 0, np.array(diverged), status="diverged", test_loss=5.0)
    write_run(root, "fast_diverged", 1, np.clip(100.0 - 2 * STEPS, 0, None), test_loss=5.0)
    write_run(root, "fast", 2, np.zeros(5), status="running")
    return root


def row(table: pd.DataFrame, optimizer: str, fraction: float = 0.95) -> pd.Series:
    sel = table[(table["optimizer"] == optimizer) & np.isclose(table["fraction"], fraction)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_crossings_savings_and_censoring(results: Path) -> None:
    runs = load_runs(results)
    table = steps_to_threshold(runs, "task_a", [0.5, 0.95], window=1)
    base, fast = row(table, "sgd_momentum"), row(table, "fast")
    assert base["threshold"] == pytest.approx(5.9)
    assert (base["index"], fast["index"]) == (94, 47)
    assert (base["steps"], fast["steps"]) == (95, 48)  # index + window
    assert fast["savings"] == 0.5 == fast["savings_seed_mean"]
    assert fast["savings_ci95"] == 0 and fast["p_value"] == 0
    assert (fast["n_seeds"], fast["n_paired"], fast["n_censored"]) == (2, 2, 0)
    # f = 0.5: T = 99 − 49 = 50 → baseline index 49, fast index 24 (98 − 48 = 50 ≤ 50)
    assert (row(table, "sgd_momentum", 0.5)["index"], row(table, "fast", 0.5)["index"]) == (49, 24)
    never = row(table, "never")
    assert math.isnan(never["index"]) and never["n_censored"] == 3 and never["n_paired"] == 0
    assert never["per_seed"] == "0:censored 1:censored 2:censored"
    div = row(table, "fast_diverged")
    assert div["index"] == 47  # mean curve over finished runs only
    assert (div["n_seeds"], div["n_censored"]) == (2, 1)
    assert any("fast/seed=2: status running" in p for p in runs.problems)


def test_without_a_finished_baseline_no_seed_is_called_censored(tmp_path: Path) -> None:
    """The README's ``optimizer=sgdo seed=...`` sweep has no CM run: its rows say that, not
    "not reached, all censored"; a baseline whose every seed diverged says so too."""
    root = tmp_path / "exp"
    for seed in range(2):
        write_run(root, "fast", seed, np.clip(100.0 - 2 * STEPS, 0, None))
    fast = row(steps_to_threshold(load_runs(root), "task_a", [0.95], window=1), "fast")
    assert (fast["baseline"], fast["n_censored"], fast["per_seed"]) == (
        "",
        0,
        "0:no threshold 1:no threshold",
    )
    summary = steps_summary(pd.DataFrame([fast]))
    assert summary.endswith("fast                         no threshold: no baseline run  n=2")
    write_run(root, "sgd_momentum_lr0.004", 0, 100.0 - STEPS)  # a rate grid's (lr_in_label)
    table = steps_to_threshold(load_runs(root), "task_a", [0.95], window=1)
    why = "no threshold: each rate filed apart (lr_in_label); scripts/tune.py compares them"
    assert row(table, "fast")["no_threshold"] == why
    shutil.rmtree(root / "task_a" / "sgd_momentum_lr0.004")
    write_run(root, "sgd_momentum", 0, np.array([*(100.0 - STEPS[:10]), math.nan]), "diverged")
    table = steps_to_threshold(load_runs(root), "task_a", [0.95], window=1)
    assert "no threshold: no finished sgd_momentum run  n=2" in steps_summary(table)
    assert row(table, "fast")["n_censored"] == 0
    write_run(root, "sgd_momentum", 1, 100.0 - STEPS)  # 100 steps: no full 100-step window left
    table = steps_to_threshold(load_runs(root), "task_a", [0.95], window=100)
    why = "no threshold: sgd_momentum ran no more steps than the 100-step window"
    assert row(table, "fast")["no_threshold"] == why and "censored" not in steps_summary(table)
    assert row(steps_to_threshold(load_runs(root), "task_a", [0.95], 1), "fast")["index"] == 47


def test_mean_over_tasks_averages_each_tasks_saving(results: Path, tmp_path: Path) -> None:
    """task_b: the same baseline (index 94) and ``fast`` at a = 96 − 4k → index 23, so fast
    saves 0.5 on task_a and 71/94 on task_b; ``never`` is censored on its one task."""
    for seed in range(2):
        write_run(results, "sgd_momentum", seed, 100.0 - STEPS, task="task_b")
        write_run(results, "fast", seed, np.clip(100.0 - 4 * STEPS, 0, None), task="task_b")
    runs = load_runs(results)
    table = pd.concat([steps_to_threshold(runs, t, [0.95], window=1) for t in ("task_a", "task_b")])
    assert row(table[table["task"] == "task_b"], "fast")["savings"] == pytest.approx(71 / 94)
    means = mean_over_tasks(table).set_index("optimizer")
    assert set(means.index) == {"fast", "fast_diverged", "never"}  # baselines are not rows
    fast = means.loc["fast"]
    assert fast["savings"] == pytest.approx((0.5 + 71 / 94) / 2) == fast["savings_seed_mean"]
    assert (fast["n_tasks"], fast["tasks"], fast["tasks_left_out"]) == (2, "task_a task_b", "")
    never = means.loc["never"]
    assert never["n_tasks"] == 0 and never["tasks_left_out"] == "task_a"
    assert math.isnan(never["savings"])
    report_main(
        [str(results), "--out", str(tmp_path / "r"), "--smoothing", "1", "--tensorboard", ""]
    )
    written = pd.read_csv(tmp_path / "r" / "mean_over_tasks.csv").set_index("optimizer")
    assert written.loc["fast", "savings"] == pytest.approx(fast["savings"])
    shown = " ".join((tmp_path / "r" / "mean_over_tasks.md").read_text().split())
    assert "| fast | 62.8 % | 62.8 % | 2: task_a task_b | |" in shown
    assert "| never | – | – | 0: | task_a |" in shown


def test_runs_of_another_results_version_are_left_out(results: Path) -> None:
    meta = results / "task_a" / "fast" / "seed=1" / "meta.json"
    meta.write_text(json.dumps({"status": "finished", "step_time_s": 1.0}))
    runs = load_runs(results)
    assert set(runs.index.loc[runs.index["optimizer"] == "fast", "seed"]) == {0}
    assert (
        "task_a/fast/seed=1: results version 1, not 2 (measured by another harness), left out"
        in (runs.problems)
    )


def test_paper_computation_on_a_curve_worked_by_hand(tmp_path: Path) -> None:
    """Window 3 over 10 steps: a_b = 8, 7, 6, 5, 4, 10/3, 7/3 (the window ending at the last
    step is left out, as in the notebook); T(0.5) = 8 − (8 − 7/3)/2 = 31/6 → index_b = 3 (5).
    Overshoot: a = 7, 16/3, 5 → index 2. Saving (3 − 2)/3; in real steps (6 − 5)/6."""
    for seed in (0, 1):
        write_run(tmp_path, "cm", seed, np.array([9.0, 7, 8, 6, 4, 5, 3, 2, 2, 1]))
        write_run(tmp_path, "sgdo_g3", seed, np.array([9.0, 5, 7, 4, 4, 3, 3, 2, 2, 1]))
    table = steps_to_threshold(load_runs(tmp_path), "task_a", [0.5], 3, {"sgd": "cm"})
    base, ours = row(table, "cm", 0.5), row(table, "sgdo_g3", 0.5)
    assert base["threshold"] == pytest.approx(31 / 6)
    assert (base["index"], ours["index"], base["steps"], ours["steps"]) == (3, 2, 6, 5)
    assert ours["savings"] == pytest.approx(1 / 3) == ours["savings_seed_mean"]
    assert ours["savings_real_steps"] == pytest.approx(1 / 6)


def test_smoothing_is_the_notebooks_to_the_last_bit() -> None:
    """The reference's own loop, ``[np.mean(v[i - w : i]) for i in range(w, len(v))]``."""
    v = np.random.default_rng(0).lognormal(size=2000)
    for w in (1, 7, 400):
        oracle = np.array([np.mean(v[i - w : i]) for i in range(w, len(v))])
        np.testing.assert_array_equal(trailing_mean(v, w), oracle)
    assert len(trailing_mean(v[:400], 400)) == 0  # no partial windows, ever


def test_interval_and_p_value_are_scipys_one_sample_t() -> None:
    """scipy's ``ttest_1samp`` is the oracle: its 95 % interval and its p-value; so the
    interval excludes 0 exactly when p < 0.05."""
    from scipy import stats

    rng = np.random.default_rng(1)
    for _ in range(200):
        savings = rng.normal(0.05, 0.1, size=int(rng.integers(2, 12)))
        test = stats.ttest_1samp(savings, 0.0)
        low, high = test.confidence_interval(0.95)
        assert savings.mean() - ci95(savings) == pytest.approx(low, rel=1e-12, abs=1e-15)
        assert savings.mean() + ci95(savings) == pytest.approx(high, rel=1e-12, abs=1e-15)
        assert one_sample_p(savings) == pytest.approx(test.pvalue, rel=1e-12)
        assert (low > 0 or high < 0) == (one_sample_p(savings) < 0.05)
    assert math.isnan(ci95(np.array([0.1]))) and math.isnan(one_sample_p(np.array([0.1])))


def test_wall_clock_turns_steps_saved_into_time_saved(results: Path) -> None:
    runs = load_runs(results)
    table = add_wall_clock(steps_to_threshold(runs, "task_a", [0.95], window=1), runs)
    base, fast = row(table, "sgd_momentum"), row(table, "fast")
    assert base["s_per_step"] == pytest.approx(0.01) and base["time_savings"] == 0
    # fast: 48 steps at (1/40 + 1/60)/2 s = 1 s vs the baseline's 95 steps at 0.01 s = 0.95 s
    assert fast["s_per_step"] == pytest.approx((1 / 40 + 1 / 60) / 2)
    assert fast["step_time_ratio"] == pytest.approx(fast["s_per_step"] / 0.01)
    assert fast["time_to_threshold_s"] == pytest.approx(1.0)
    assert fast["time_savings"] == pytest.approx(1 - 1.0 / 0.95)  # saves steps, not time
    assert math.isnan(row(table, "never")["time_savings"])
    assert set(table["time_note"]) == {""}


def test_step_times_of_runs_that_computed_differently_are_not_compared(tmp_path: Path) -> None:
    """A ratio across thread counts (or kernels, devices, members) measures the machine, not the
    optimizer: left out unless asked for, and marked when asked; runs of earlier versions are
    marked as timed the old way."""
    root = tmp_path / "exp"
    for seed in range(2):
        write_run(root, "sgd_momentum", seed, 100.0 - STEPS)
        write_run(root, "fast", seed, 100.0 - 2 * STEPS, meta={"cpu_threads": 1})
        old = {"step_time_s": None, "steps_per_s": 50.0}
        write_run(root, "old", seed, 100.0 - STEPS, family="adam", meta=old)
        write_run(root, "big_job", seed, 100.0 - STEPS, meta={"members": 30})
    runs = load_runs(root)
    table = add_wall_clock(steps_to_threshold(runs, "task_a", [0.95], window=1), runs)
    fast = row(table, "fast")
    assert math.isnan(fast["step_time_ratio"]) and math.isnan(fast["time_savings"])
    assert fast["s_per_step"] == 0.01  # its own time stands
    ran = "kernels=fused CPU AVX512 {} threads; step median"
    assert fast["time_note"] == (
        f"not compared (--mixed-time): fast ran {ran.format(1)}; sgd_momentum ran {ran.format(2)}"
    )
    mixed = row(add_wall_clock(steps_to_threshold(runs, "task_a", [0.95], 1), runs, True), "fast")
    assert mixed["step_time_ratio"] == 1.0 and mixed["time_note"].startswith("mixed: fast ran")
    assert row(table, "old")["s_per_step"] == 0.02
    assert row(table, "old")["time_note"] == "old definition: training wall time / steps"
    assert row(table, "big_job")["time_note"].endswith(  # a member's share of a 30-member job
        f"big_job ran kernels=fused CPU AVX512 2 threads 30 members; step median; "
        f"sgd_momentum ran {ran.format(2)}"
    )


def test_report_writes_every_file(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, tb = tmp_path / "report", tmp_path / "tb"
    report_main([str(results), "--out", str(out), "--smoothing", "1", "--tensorboard", str(tb)])
    for name in (
        "steps_to_threshold.csv",
        "table1.md",
        "table1.tex",
        "table1.csv",
        "performance_profile.png",
    ):
        assert (out / name).stat().st_size > 0, name
    for name in ("steps_to_threshold.csv", "loss_curves.png", "savings.png"):
        assert (out / "task_a" / name).stat().st_size > 0, name
    assert "fast/seed=2: status running" in (out / "missing.txt").read_text()
    assert list((tb / "fast").glob("events.out.tfevents.*"))
    printed = capsys.readouterr().out
    assert "not reached" in printed and "left out" in printed
    table = pd.read_csv(out / "table1.csv").set_index("optimizer")
    assert table.loc["fast", "mean"] == pytest.approx(1.5)  # seeds 0 and 1: 1.0, 2.0
    assert table.loc["fast", "n_seeds"] == 2
    md = (out / "table1.md").read_text()
    assert "**1.5 ± " in md  # best (lowest test loss) in bold
    assert md.index("sgd_momentum") < md.index("fast")  # baseline columns first


def test_report_bad_folder_exits_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        report_main([str(tmp_path / "nope")])
    assert exc.value.code == 2


def test_report_folder_without_runs_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        report_main([str(tmp_path)])
    assert exc.value.code == 2
    assert capsys.readouterr().err.endswith(f": error: no finished runs under {tmp_path}\n")
    assert not (tmp_path / "report").exists()


def test_the_report_runs_as_a_command(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    args = [str(results), "--out", str(out), "--smoothing", "1", "--tensorboard", ""]
    proc = subprocess.run([sys.executable, REPORT, *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report_main(
        [str(results), "--out", str(tmp_path / "lib"), "--smoothing", "1", "--tensorboard", ""]
    )
    assert (out / "table1.md").read_text() == (tmp_path / "lib" / "table1.md").read_text()
    assert proc.stdout.rstrip().endswith(f"report: {out}")
    with pytest.raises(SystemExit) as bad:
        report_main([str(tmp_path / "nope")])
    assert bad.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"report.py: error: results folder {tmp_path / 'nope'} does not exist"
    )


def test_the_package_ships_the_optimizers_alone(tmp_path: Path) -> None:
    """``pip install .`` puts ``overshoot`` into site-packages and no harness folder beside it."""
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("overshoot-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"overshoot"}


def test_the_multirun_summary_leaves_the_plotting_stack_out_of_training(results: Path) -> None:
    """The summary runs in main.py's process after every multirun: it reads the runs and prints
    the table, with no matplotlib imported there."""
    import sys

    code = (
        "import sys\n"
        "from omegaconf import OmegaConf\n"
        "from scripts.sweep_summary import print_summary\n"
        f"print_summary(OmegaConf.create({{'results_dir': {str(results.parent)!r}, "
        f"'experiment_name': {results.name!r}}}))\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("steps to 0.95 of the baseline's loss reduction")
    assert {line.split()[1] for line in lines[1:5]} == {"fast", "fast_diverged", "never"} | {
        "sgd_momentum"
    }
    assert "left out: task_a/fast/seed=2: status running, left out" in lines


def test_a_sweep_no_longer_than_the_window_reports_its_tables_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """300-step runs under the 400-step window have no T: the report writes its tables and
    says in one line why it drew no performance profile (it raised on an empty maximum)."""
    root = tmp_path / "smoke"
    for seed in range(2):
        write_run(root, "sgd_momentum", seed, 400.0 - np.arange(300.0))
        write_run(root, "sgdo_g5", seed, 390.0 - np.arange(300.0))
    report_main([str(root), "--tensorboard", ""])
    out = root / "report"
    assert (out / "table1.md").is_file() and (out / "task_a" / "loss_curves.png").is_file()
    assert not (out / "performance_profile.png").exists()
    printed = capsys.readouterr().out.splitlines()
    why = "no threshold: sgd_momentum ran no more steps than the 400-step window"
    assert f"performance profile not drawn: no task has a crossing of T ({why})" in printed


def test_a_run_whose_files_disagree_with_its_meta_is_left_out_with_the_reason(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished run whose steps.csv was cut to half its rows, or to half its header line, is
    listed in missing.txt with the reason, not read as a censored curve or a traceback."""
    half = results / "task_a" / "sgd_momentum" / "seed=1" / "steps.csv"
    lines = half.read_text().splitlines(keepends=True)
    half.write_text("".join(lines[: len(lines) // 2]))
    header = results / "task_a" / "sgd_momentum" / "seed=2" / "steps.csv"
    header.write_text(header.read_text().splitlines()[0][:8])
    report_main([str(results), "--smoothing", "1", "--tensorboard", ""])
    missing = (results / "report" / "missing.txt").read_text().splitlines()
    assert (
        "task_a/sgd_momentum/seed=1: steps.csv holds 49 steps where meta.json records 100, left out"
        in missing
    )
    assert (
        "task_a/sgd_momentum/seed=2: steps.csv lacks its step and loss_base columns "
        "(cut or corrupted), left out" in missing
    )
    table = pd.read_csv(results / "report" / "steps_to_threshold.csv")
    assert table.loc[table["optimizer"] == "sgd_momentum", "n_seeds"].eq(1).all()
    assert "left out" in capsys.readouterr().out


def test_time_ratios_carry_an_interval_across_seeds_and_say_when_they_are_not_told_from_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per seed the ratios are 1.1, 0.9, 1.0 (``even``: not told from 1.00) and 2.0, 2.2, 1.8
    (``slow``: told apart); the interval is a t interval on their logs."""
    root = tmp_path / "exp"
    for seed, (even, slow) in enumerate([(1.1, 2.0), (0.9, 2.2), (1.0, 1.8)]):
        write_run(root, "sgd_momentum", seed, 100.0 - STEPS, step_time_s=0.01)
        write_run(root, "even", seed, 100.0 - STEPS, step_time_s=0.01 * even)
        write_run(root, "slow", seed, 100.0 - STEPS, step_time_s=0.01 * slow)
    report_main([str(root), "--smoothing", "1", "--tensorboard", ""])
    lines = [line for line in capsys.readouterr().out.splitlines() if "step time" in line]

    def interval(ratios: list[float]) -> str:
        logs = np.log(ratios)
        low, high = np.exp(logs.mean() + np.array([-1, 1]) * ci95(logs))
        return f"{low:.2f}–{high:.2f}"

    assert lines == [
        f"  time, task_a: even / sgd_momentum step time 1.00 (95 % interval "
        f"{interval([1.1, 0.9, 1.0])}, 3 seeds, cannot be told from 1.00)",
        f"  time, task_a: slow / sgd_momentum step time 2.00 (95 % interval "
        f"{interval([2.0, 2.2, 1.8])}, 3 seeds)",
    ]


def test_a_multirun_imports_nothing_of_scripts_and_still_prints_its_table(tmp_path: Path) -> None:
    """Training never imports scripts/: the end-of-multirun table comes from
    scripts/sweep_summary.py in a process of its own (trainers/cli/sweeps.py)."""
    main = str(ROOT / "main.py")
    code = (
        "import atexit, runpy, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"  # as python main.py puts its folder first
        "atexit.register(lambda: print('SCRIPTS', sorted(m for m in sys.modules "
        "if m.split('.')[0] == 'scripts')))\n"  # registered first, so it runs last
        f"sys.argv = [{main!r}, '-m', 'seed=0,1', 'max_steps=3', 'trainer=debug', '~logger',"
        f" 'results_dir={tmp_path}']\n"
        f"runpy.run_path({main!r}, run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SCRIPTS []" in proc.stdout
    assert "steps to 0.95 of the baseline's loss reduction" in proc.stdout
    assert f"archive: {tmp_path / 'test' / 'archive'} (2 runs)" in proc.stdout
