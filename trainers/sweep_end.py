"""Hydra callback: after a multirun, the experiment's steps-to-95 % table and its archive, made
by ``scripts/sweep_summary.py`` in a process of its own, so training never imports scripts/."""

from __future__ import annotations

import atexit
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

SUMMARY = Path(__file__).resolve().parents[1] / "scripts" / "sweep_summary.py"


class MultirunSummary(Callback):
    """Prints the table at the end of a multirun, also one in which a job failed.

    Hydra skips ``on_multirun_end`` when a job fails (it reports the failure and exits 1 once
    every job has run), so the table of the jobs that did run is then printed at exit.
    """

    def __init__(self) -> None:
        self._owed: DictConfig | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._owed = config
        atexit.register(self._print_if_owed)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._owed = None
        summarize(config)

    def _print_if_owed(self) -> None:
        if self._owed is not None:
            summarize(self._owed)


def summarize(config: DictConfig) -> None:
    """The summary of ``config``'s experiment, printed where this process prints."""
    sys.stdout.flush()
    where = [str(config.results_dir), str(config.experiment_name)]
    subprocess.run([sys.executable, str(SUMMARY), *where], check=False)
