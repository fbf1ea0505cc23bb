"""Archives of runs (trainers/archive.py, scripts/archive.py): the report re-derives every table
from an archive byte for byte, archives and folders merge (each run once, a conflict refused),
grids grow from an archive without re-running it, and nothing is rounded."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from scripts.archive import main as archive_main
from scripts.archive import pack, unpack_all
from scripts.collect import load_runs
from scripts.report import main as report_main
from scripts.report import report
from scripts.sweep_summary import print_summary
from tests.launch import config
from trainers.archive import ARCHIVE, MergeError, archive_lock, is_archive, read_archive
from trainers.results import RunPath, folder_lock
from trainers.train import train

STEPS = 450  # past the 400-step window: thresholds and crossings are computed
GRID = [  # (overrides, seeds)
    (["optimizer=sgd_momentum"], [0, 1]),
    (["optimizer=sgdo"], [0, 1]),
    (["optimizer=adamw"], [0, 1]),
    (["optimizer=adamo"], [0, 1]),
    (["optimizer=sgd_momentum", "task.sgd.lr=40"], [2]),  # diverges: censored in the report
]


def run_grid(tmp: Path, experiment: str, grid: list[tuple[list[str], list[int]]]) -> Path:
    for overrides, seeds in grid:
        for seed in seeds:
            cfg = config(tmp, [f"max_steps={STEPS}", f"seed={seed}", *overrides], experiment)
            train(cfg)
    return tmp / "results" / experiment


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_grid(tmp_path_factory.mktemp("grid"), "grid", GRID)


def tables(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.suffix in (".csv", ".md", ".tex", ".txt")
    }


def test_the_report_from_the_archive_equals_the_report_from_the_folders(
    grid: Path, tmp_path: Path
) -> None:
    folders = tmp_path / "folders"
    shutil.copytree(grid, folders)
    report(folders, tmp_path / "from_folders", [0.5, 0.95], 400)
    archive = tmp_path / "archive"
    records, problems = pack([folders], archive)
    assert len(records) == 9 and problems == []
    shutil.rmtree(folders)
    report(archive, tmp_path / "from_archive", [0.5, 0.95], 400)
    expected, got = tables(tmp_path / "from_folders"), tables(tmp_path / "from_archive")
    assert len(expected) > 5 and got.keys() == expected.keys()
    for name in expected:
        assert got[name] == expected[name], name
    steps = pd.read_csv(tmp_path / "from_archive" / "steps_to_threshold.csv")
    assert steps["n_censored"].max() == 1  # the diverged CM seed, from the archive too


def test_nothing_is_rounded_and_only_what_tables_read_is_stored(grid: Path, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    pack([grid], archive)
    steps = pd.read_parquet(archive / "steps.parquet")  # pandas reads it without our code
    assert steps["loss_base"].dtype == np.float32  # float32 runs: four bytes a value
    for record in read_archive(archive):
        csv = pd.read_csv(record.key.folder(grid.parents[0]) / "steps.csv")
        np.testing.assert_array_equal(record.steps["step"], csv["step"])
        np.testing.assert_array_equal(record.steps["loss_base"], csv["loss_base"])
    # the held weights' loss (an Overshoot run's own, unlike its loss_base) is read by no table
    sgdo = pd.read_csv(
        RunPath("grid", "mlp_diabetes", "sgdo_g5", 0).folder(grid.parent) / "steps.csv"
    )
    assert not np.array_equal(sgdo["loss"], sgdo["loss_base"])
    assert list(steps.columns) == ["experiment", "task", "optimizer", "seed", "step", "loss_base"]
    runs = pd.read_parquet(archive / "runs.parquet")
    assert len(runs) == 9 and set(runs["status"]) == {"finished", "diverged"}

    high = run_grid(tmp_path, "high", [(["optimizer=sgdo", "precision=high"], [0])])
    pack([high], tmp_path / "archive64")
    assert (
        pd.read_parquet(tmp_path / "archive64" / "steps.parquet")["loss_base"].dtype == np.float64
    )
    (record,) = read_archive(tmp_path / "archive64")
    csv = pd.read_csv(
        RunPath("high", "mlp_diabetes", "sgdo_g5", 0).folder(high.parent) / "steps.csv"
    )
    np.testing.assert_array_equal(record.steps["loss_base"], csv["loss_base"])


def test_archives_and_folders_merge_and_a_conflict_is_refused_in_one_line(
    grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive"
    pack([grid], archive)
    both = load_runs(grid, archive)  # the same runs twice: each counted once
    assert len(both.index) == len(load_runs(grid).index) == 9
    changed = tmp_path / "elsewhere" / "grid"  # the grid copied to another machine and changed
    shutil.copytree(grid, changed)
    steps_csv = changed / "mlp_diabetes" / "sgdo_g5" / "seed=1" / "steps.csv"
    steps = pd.read_csv(steps_csv)
    steps.loc[99, "loss_base"] += 1e-3
    steps.to_csv(steps_csv, index=False)
    with pytest.raises(MergeError) as refused:
        load_runs(archive, changed)
    assert str(refused.value) == (
        f"grid/mlp_diabetes/sgdo_g5/seed=1 in {archive} and grid/mlp_diabetes/sgdo_g5/seed=1 in "
        f"{steps_csv.parent} are not the same run (loss_base differs from step 100); report them "
        "apart or leave one out"
    )
    with pytest.raises(SystemExit) as stopped:
        archive_main(["pack", str(changed), "--out", str(archive)])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "archive.py: error: grid/mlp_diabetes/sgdo_g5/seed=1 in "
    ) and err.endswith(
        "are not the same run (loss_base differs from step 100); report them apart or leave "
        "one out\n"
    ), err
    assert err.count("\n") == 1
    with pytest.raises(SystemExit) as stopped:  # a report of both: the same line, status 2
        report_main([str(changed), str(archive), "--out", str(tmp_path / "report")])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == err.replace("archive.py:", "report.py:", 1)
    assert not (tmp_path / "report").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as stopped:  # nothing to pack: one line, no archive written
        archive_main(["pack", str(empty)])
    assert stopped.value.code == 2 and not (empty / "archive").exists()
    assert capsys.readouterr().err.endswith(f"archive.py: error: no ended runs in {empty}\n")
    archive_main(["pack", str(changed), "--out", str(archive), "--replace"])
    assert f"sgdo_g5/seed=1 in {archive}: replaced by {steps_csv.parent}" in capsys.readouterr().out
    replaced = {r.name: r for r in read_archive(archive)}["grid/mlp_diabetes/sgdo_g5/seed=1"]
    assert replaced.steps["loss_base"][99] == pytest.approx(steps.loc[99, "loss_base"], abs=1e-7)


def test_a_run_trained_again_replaces_its_archived_self_at_the_end_of_a_sweep(
    grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """force=true trains an archived run again; where its curve differs (another kernel path,
    say) the end-of-sweep summary archives the new run instead of refusing to update."""
    results = tmp_path / "results" / "grid"
    shutil.copytree(grid, results)
    pack([results], results / ARCHIVE)
    steps_csv = results / "mlp_diabetes" / "sgd_momentum" / "seed=0" / "steps.csv"
    steps = pd.read_csv(steps_csv)
    steps["loss_base"] *= 1.5
    steps.to_csv(steps_csv, index=False)
    print_summary(OmegaConf.create({"results_dir": str(results.parent), "experiment_name": "grid"}))
    assert "replaced by" in capsys.readouterr().out
    again = {r.name: r for r in read_archive(results / ARCHIVE)}[
        "grid/mlp_diabetes/sgd_momentum/seed=0"
    ]
    np.testing.assert_array_equal(again.steps["loss_base"], steps["loss_base"])


def test_a_grid_grows_from_its_archive_without_rerunning_it(tmp_path: Path) -> None:
    """Seeds 0 and 1 archived (elsewhere, say), their folders gone: asking for seeds 0–2
    restores 0 and 1 from the experiment's archive and trains 2 alone; archives from two places
    then merge into one of all three."""
    first = run_grid(tmp_path / "a", "grow", [(["optimizer=sgdo"], [0, 1])])
    pack([first], first / "archive")
    for folder in first.glob("*/*/seed=*"):
        shutil.rmtree(folder)
    statuses = []
    for seed in (0, 1, 2):
        cfg = config(tmp_path / "a", [f"max_steps={STEPS}", f"seed={seed}", "optimizer=sgdo"])
        cfg.experiment_name = "grow"
        statuses.append(train(cfg)["status"])
    assert statuses == ["finished (already; force=true to re-run)"] * 2 + ["finished"]
    restored = RunPath("grow", "mlp_diabetes", "sgdo_g5", 0).folder(first.parent)
    assert '"unpacked_from"' in (restored / "meta.json").read_text()
    second = run_grid(tmp_path / "b", "grow", [(["optimizer=sgdo"], [3])])
    records, _ = pack([first, second], tmp_path / "all")
    assert sorted(r.key.seed for r in records) == [0, 1, 2, 3]
    archived = {r.key.seed: r.meta for r in read_archive(first / "archive")}
    repacked = {r.key.seed: r.meta for r in read_archive(tmp_path / "all")}
    assert repacked[0] == archived[0] and repacked[1] == archived[1]  # not where it was restored

    elsewhere = tmp_path / "elsewhere"
    assert len(unpack_all(tmp_path / "all", elsewhere)) == 4
    assert unpack_all(tmp_path / "all", elsewhere) == []  # the same runs are there already
    assert len(load_runs(elsewhere / "grow").index) == 4


@pytest.mark.parametrize("writer", ["pack", "end of sweep"])
def test_an_archive_is_merged_and_written_under_its_lock(
    writer: str, grid: Path, tmp_path: Path
) -> None:
    """Two multiruns of one experiment that end together each merge the archive: unlocked, the
    last to write drops the other's runs. Whoever holds the lock makes the writer wait."""
    results = tmp_path / "results" / "grid"
    shutil.copytree(grid, results)
    archive = results / ARCHIVE
    if writer == "pack":
        write = threading.Thread(target=pack, args=([results], archive))
    else:
        cfg = OmegaConf.create({"results_dir": str(results.parent), "experiment_name": "grid"})
        write = threading.Thread(target=print_summary, args=(cfg,))
    with archive_lock(archive):
        write.start()
        write.join(timeout=2)
        assert write.is_alive() and not is_archive(archive)
    write.join()
    assert len(read_archive(archive)) == 9


def test_a_folder_that_does_not_exist_is_refused_and_left_uncreated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in pack's or unpack's folder: one line, exit 2, as report.py and tune.py say it,
    and no folder (pack's lock would have made one, with a .archive.lock in it)."""
    typo = tmp_path / "results" / "typo_experiment"
    for argv in (["pack", str(typo)], ["unpack", str(typo / "archive")]):
        with pytest.raises(SystemExit) as stopped:
            archive_main(argv)
        assert stopped.value.code == 2
        missing = typo if argv[0] == "pack" else typo / "archive"
        assert capsys.readouterr().err == (
            f"archive.py: error: results folder {missing} does not exist\n"
        )
    assert not typo.exists()


def test_a_concurrent_multiruns_running_runs_are_counted_not_listed_as_left_out(
    grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two multiruns of one experiment: the one that ends first finds the other's runs still
    training (their folders locked). It says how many in one line instead of listing each as
    left out; a running run nobody holds (a killed one) is still listed."""
    results = tmp_path / "results" / "grid"
    shutil.copytree(grid, results)
    for seed in (7, 8):
        folder = RunPath("grid", "mlp_diabetes", "adamo_g5", seed).folder(tmp_path / "results")
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text('{"status": "running", "results_version": 2}')
        (folder / ".lock").touch()
    held = RunPath("grid", "mlp_diabetes", "adamo_g5", 7).folder(tmp_path / "results")
    cfg = OmegaConf.create({"results_dir": str(results.parent), "experiment_name": "grid"})
    with folder_lock(held) as mine:
        assert mine
        thread = threading.Thread(target=print_summary, args=(cfg,))  # as another process
        thread.start()
        thread.join()
    out = capsys.readouterr().out
    assert "not yet in the table: 1 run still training in another process" in out
    assert "left out: mlp_diabetes/adamo_g5/seed=8: status running, left out" in out
    assert "seed=7" not in out


def test_a_pack_reads_the_archive_inside_its_lock_so_no_update_is_lost(
    grid: Path, tmp_path: Path
) -> None:
    """The lost update the lock is for: another multirun's run lands in the archive while this
    pack waits on the lock; the pack must read the archive after taking it, and keep that run
    (read before, it would write the archive without it)."""
    from scripts.collect import read_sources
    from trainers.archive import write_archive

    results = tmp_path / "results" / "grid"
    shutil.copytree(grid, results)
    other = tmp_path / "other" / "grid" / "mlp_diabetes" / "sgdo_g5"
    shutil.copytree(results / "mlp_diabetes" / "sgdo_g5" / "seed=1", other / "seed=99")
    archive = results / ARCHIVE
    write = threading.Thread(target=pack, args=([results], archive))
    with archive_lock(archive):
        write.start()
        write.join(timeout=1)
        assert write.is_alive()
        write_archive(read_sources([other.parents[1]])[0], archive)  # the other multirun's
    write.join()
    seeds = sorted(r.key.seed for r in read_archive(archive) if r.key.optimizer == "sgdo_g5")
    assert seeds == [0, 1, 99]
