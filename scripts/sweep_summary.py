"""Hydra callback: after a multirun, print the steps-to-95 % table of the experiment's results
and pack its runs into the experiment's archive."""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

HELD = "held by another process (still training), left out"


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
    """The steps-to-95 % table of the experiment's runs (its folders and its archive), and the
    archive brought up to date with them, a run trained again replacing its archived self."""
    from scripts.archive import pack  # no plotting stack in training
    from scripts.collect import runs_from
    from scripts.threshold import steps_summary, steps_to_threshold
    from trainers.archive import ARCHIVE

    results = Path(config.results_dir) / str(config.experiment_name)
    archive = results / ARCHIVE
    # A folder that differs from its archived run was trained again (force=true): it stands.
    records, problems = pack([results], archive, replace=True)
    if not records:
        print(f"no finished runs under {results}")
        return
    runs = runs_from(records, problems)
    tasks = sorted(runs.index["task"].unique())
    table = [steps_to_threshold(runs, t, [0.95], window=400) for t in tasks]

    print(steps_summary(pd.concat(table, ignore_index=True)))
    elsewhere = [p for p in runs.problems if p.endswith(HELD)]
    for problem in runs.problems:
        if problem not in elsewhere:
            print(f"left out: {problem}")
    if elsewhere:  # a concurrent multirun's runs: not this one's business, but not forgotten
        runs_ = f"{len(elsewhere)} run{'s' if len(elsewhere) != 1 else ''}"
        print(f"not yet in the table: {runs_} still training in another process")
    print(f"archive: {archive} ({len(records)} runs)")
    print(f"full report: python scripts/report.py {results} {archive}")
