"""The logger group: TensorBoard by default, CSV on request, none with ~logger."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from tests.launch import config
from trainers.fit.trainer import claim_version
from trainers.train import train

ARGS = ["optimizer=sgdo", "max_steps=60"]


def test_csv_logger_writes_the_same_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    summary = train(config(tmp_path, [*ARGS, "logger=csv", "job_name=csvjob"]))
    logs = Path(summary["logs"])
    assert logs == Path("lightning_logs/peers/csvjob/version_0")
    metrics = pd.read_csv(tmp_path / logs / "metrics.csv")
    assert {"train/loss", "train/loss_base", "val/loss", "test/loss"} <= set(metrics.columns)
    assert not list((tmp_path / logs).glob("events.out.tfevents.*"))


def test_no_logger_still_writes_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    summary = train(config(tmp_path, [*ARGS, "~logger"]))
    assert summary["status"] == "finished" and summary["logs"] is None
    assert not (tmp_path / "lightning_logs").exists()
    assert len(pd.read_csv(Path(summary["results"]) / "steps.csv")) == 60


def test_parallel_jobs_never_share_a_version_folder(tmp_path: Path) -> None:
    (tmp_path / "version_0").mkdir()
    (tmp_path / "version_x").mkdir()  # not a version: ignored
    with ThreadPoolExecutor(8) as pool:
        claimed = list(pool.map(lambda _: claim_version(tmp_path), range(64)))
    assert sorted(claimed) == list(range(1, 65))
    assert all((tmp_path / f"version_{n}").is_dir() for n in claimed)


def test_progress_bar_shows_no_version_number(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytorch_lightning.callbacks import RichProgressBar

    from trainers.fit.callbacks import LossProgressBar

    monkeypatch.setattr(RichProgressBar, "get_metrics", lambda *a: {"v_num": 1, "val/loss": 0.5})
    assert LossProgressBar().get_metrics(None, None) == {"val/loss": 0.5}  # type: ignore[arg-type]
