"""The benchmarks as a user runs them, where that is quick: a failure says the child's own line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_time_null_without_data_says_the_childs_line_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "OVERSHOOT_DATA": str(tmp_path / "empty")}
    bench = [sys.executable, str(ROOT / "scripts" / "bench_time_null.py"), "--repeats", "1"]
    proc = subprocess.run(bench, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
        "bench_time_null.py: error: main.py -m task=mlp_energy seed=0,1,2,3,4 "
        "optimizer=sgd_momentum,sgdo failed: main.py: error: no job of this multirun finds its "
        f"data: missing data file {tmp_path / 'empty'}/"
    )


def test_bench_members_runs_dry_on_the_embedded_task(capsys: pytest.CaptureFixture[str]) -> None:
    """Two steps of each loop, so the bench cannot rot; its numbers are not checked here."""
    from scripts import bench_members

    bench_members.main(
        ["--tasks", "mlp_diabetes", "--steps", "2", "--repeats", "1", "--members", "2"]
    )
    out = capsys.readouterr().out
    assert "mlp_diabetes: plain loop " in out and "null pair " in out and "MFLOP/step" in out
    assert "  S=2 " in out and "x plain" in out and "protocol at paper_v1's " in out


def test_bench_ended_members_runs_dry_on_the_embedded_task(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One repeat of both jobs (the ended dropped, and computing on), so the bench cannot rot."""
    from scripts import bench_ended_members

    monkeypatch.chdir(tmp_path)
    bench_ended_members.main_(["--task", "mlp_diabetes", "--steps", "130", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "mlp_diabetes, sgd_momentum: one job at the task's rate × [0.125,0.25," in out
    assert "  repeat 0: keep " in out and "  repeat 0: drop " in out
    assert "ratio dropped / computing on, median of the repeats' pairs: " in out


def test_bench_members_times_main_py_as_a_user_runs_it_in_commands_that_compose() -> None:
    """--lightning's three ways of training S seeds pass main.py's checks (the runs themselves
    take a minute even at two steps, so they are left to the bench)."""
    import main
    from scripts import bench_members

    for way, (overrides, _) in bench_members.WAYS.items():
        command = bench_members.lightning_command("mlp_diabetes", "adamo", 3, 5, way)
        assert command[0] == "-m" and "seed=1,2,3" in command and "max_steps=5" in command
        assert "hparams=current" in command  # mlp_diabetes has no paper_v1 settings
        assert set(overrides) <= set(command), way
        main.checked_args([*command, "results_dir=unused"])
