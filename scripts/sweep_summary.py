"""Hydra callback: after a multirun, print the steps-to-95 % table of the experiment's results."""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


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
        print_summary(config)

    def _print_if_owed(self) -> None:
        if self._owed is not None:
            print_summary(self._owed)


def print_summary(config: DictConfig) -> None:
    from scripts.collect import load_runs  # not scripts.report: no plotting stack in training
    from scripts.threshold import steps_summary, steps_to_threshold

    results = Path(config.results_dir) / str(config.experiment_name)
    runs = load_runs(results)
    if runs.index.empty:
        print(f"no finished runs under {results}")
        return
    tasks = sorted(runs.index["task"].unique())
    table = [steps_to_threshold(runs, t, [0.95], window=400) for t in tasks]

    print(steps_summary(pd.concat(table, ignore_index=True)))
    for problem in runs.problems:
        print(f"left out: {problem}")
    print(f"full report: python scripts/report.py {results}")
