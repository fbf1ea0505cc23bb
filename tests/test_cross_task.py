"""scripts/cross_task.py on two tasks' tuned tables whose cross-task figures are known by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from scripts.archive import pack
from scripts.cross_task import chosen_curves
from scripts.cross_task import main as cross_task_main
from trainers.results import RESULTS_VERSION, RunPath


def tuned_row(
    task: str, optimizer: str, rate: float, steps: float, saving: float, **kw: object
) -> dict[str, object]:
    """A row of tune.py's tuned table: 10 evaluation seeds, W = 2, T = 5."""
    family = "sgd" if optimizer.startswith("sgd") else "adam"
    baseline = {"sgd": "sgd_momentum", "adam": "adamw"}[family]
    return {
        "task": task,
        "family": family,
        "optimizer": optimizer,
        "baseline": baseline,
        "rate": rate,
        "window": 2,
        "threshold": 5.0,
        "seeds": 10,
        "reached": 10,
        "median_steps": steps,
        "saving_paired": saving,
        "saving_paired_ci95": 0.01,
        "p_value": 0.001,
        "verdict": "baseline" if optimizer == baseline else "saves",
        **kw,
    }


def write_run(
    root: Path, task: str, label: str, family: str, rate: float, seed: int, loss: np.ndarray
) -> None:
    run = RunPath(root.name, task, label, seed).folder(root.parent)
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        f"task:\n  name: {task}\n  {family}:\n    lr: {rate}\n"
        f"optimizer:\n  name: x\n  family: {family}\n"
    )
    meta = {"status": "finished", "steps": len(loss), "results_version": RESULTS_VERSION}
    (run / "meta.json").write_text(json.dumps(meta))
    steps = np.arange(1, len(loss) + 1)
    pd.DataFrame({"step": steps, "loss": loss, "loss_base": loss}).to_csv(run / "steps.csv")


@pytest.fixture
def tasks(tmp_path: Path) -> list[Path]:
    """Task a (its evaluation as the campaign files it) and task b (as results/tuned_v2 does).
    AdamO saves 10 % on a and 30 % on b; on b it never reaches T (median ∞); b's SGD family
    has no tuned baseline, so no row of it."""
    a, b = tmp_path / "a", tmp_path / "b"
    rows_a = [
        tuned_row("task_a", "adamw", 0.001, 100.0, 0.0),
        tuned_row("task_a", "adamo_g3", 0.002, 80.0, 0.10),
        tuned_row("task_a", "sgd_momentum", 0.01, 40.0, 0.0),
        tuned_row("task_a", "sgdo_g3", 0.01, 44.0, -0.1, verdict="loses", reached=7),
    ]
    rows_b = [
        tuned_row("task_b", "adamw", 0.001, 50.0, 0.0),
        tuned_row("task_b", "adamo_g3", 0.001, math.inf, 0.30, verdict="loses", reached=4),
        tuned_row("task_b", "adamo_g5", 0.001, 60.0, math.nan, reached=0),
    ]
    for folder, rows in ((a, rows_a), (b, rows_b)):
        (folder / "tuning").mkdir(parents=True)
        pd.DataFrame(rows).to_csv(folder / "tuning" / "tuned_table.csv", index=False)
    grid = tmp_path / "runs" / "grid_eval"
    for seed in (10, 20):
        write_run(grid, "task_a", "adamo_g3_lr0.002", "adam", 0.002, seed, np.full(6, seed / 10))
        write_run(grid, "task_a", "adamo_g3_lr0.001", "adam", 0.001, seed, np.full(6, 9.0))
        write_run(grid, "task_a", "adamw_lr0.001", "adam", 0.001, seed, np.full(6, 3.0))
    pack([grid], a / "grid_eval" / "archive")
    other = tmp_path / "runs_b" / "grid_eval"
    write_run(other, "task_b", "adamw_lr0.001", "adam", 0.001, 10, np.full(6, 1.0))
    pack([other], b / "evaluation")
    return [a, b]


def test_the_cross_task_tables_mean_and_profile_are_the_tasks_own(
    tasks: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "summary"
    cross_task_main([*map(str, tasks), "--tasks", "task_b,task_a", "--out", str(out)])
    means = pd.read_csv(out / "mean_over_tasks.csv").set_index("optimizer")
    g3 = means.loc["adamo_g3"]
    half = stats.t.ppf(0.975, 1) * np.std([0.1, 0.3], ddof=1) / math.sqrt(2)
    assert g3["n_tasks"] == 2 and g3["saving_mean"] == pytest.approx(0.2)
    assert g3["saving_ci95"] == pytest.approx(half)
    assert (g3["saves"], g3["loses"], g3["paper_7_task_mean"]) == (1, 1, 0.153)
    assert means.loc["adamo_g5", "n_tasks"] == 0  # its one task never reached T
    assert means.loc["sgdo_g3", "saving_mean"] == pytest.approx(-0.1)
    # AlgoPerf's profile: a: AdamW 100/80 = 1.25, AdamO g3 1, g5 ∞ (no rate: a miss);
    # b: AdamW 1, AdamO g3 ∞ (its median), g5 60/50 = 1.2
    profile = pd.read_csv(out / "performance_profile.csv")
    share = profile.set_index(["optimizer", "tau"])["share"]
    assert share[("adamw", 1.0)] == 0.5 and share[("adamw", 1.25)] == 1.0
    assert share[("adamo_g3", 4.0)] == 0.5 and share[("adamo_g5", 1.1)] == 0.0
    assert share[("adamo_g5", 1.25)] == 0.5
    md = (out / "cross_task.md").read_text()
    assert md.index("| task_b") < md.index("| task_a")  # the order asked for
    assert "| task_b | no tuned baseline" in md
    assert "30.0 ± 1.0 % (4 of 10 reach T; loses)" in md
    assert "| 0 of 10 reach T " in md
    assert (out / "loss_curves_task_a.png").is_file() and (out / "loss_curves_task_b.png").is_file()


def test_a_curve_is_the_seed_mean_at_the_chosen_rate_alone(tasks: list[Path]) -> None:
    table = pd.read_csv(tasks[0] / "tuning" / "tuned_table.csv")
    curves = chosen_curves(tasks[0] / "grid_eval" / "archive", table)
    assert set(curves) == {("adamo_g3", 0.002), ("adamw", 0.001)}  # not AdamO at 0.001
    assert curves[("adamo_g3", 0.002)].tolist() == [1.5] * 6


def test_a_folder_without_a_tuned_table_or_task_exits_2_naming_it(
    tasks: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "summary"
    with pytest.raises(SystemExit) as stopped:
        cross_task_main([str(tmp_path / "nope"), "--out", str(out)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        f"cross_task.py: error: no tuning/tuned_table.csv in {tmp_path / 'nope'}\n"
    )
    with pytest.raises(SystemExit) as stopped:
        cross_task_main([*map(str, tasks), "--tasks", "task_a,task_c", "--out", str(out)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        "cross_task.py: error: no tuned table holds task_c; they hold task_a, task_b\n"
    )
    assert not out.exists()
