"""After a multirun (trainers/cli/sweeps.py runs this), the steps-to-95 % table of the
experiment's results, its runs packed into the experiment's archive.

    python scripts/sweep_summary.py RESULTS_DIR EXPERIMENT
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from scripts.archive import pack
from scripts.collect import runs_from
from scripts.threshold import steps_summary, steps_to_threshold
from trainers.archive import ARCHIVE, HELD_ELSEWHERE


def print_summary(config: DictConfig) -> None:
    """The steps-to-95 % table of the experiment's runs (its folders and its archive), and the
    archive brought up to date with them, a run trained again replacing its archived self."""
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
    elsewhere = [p for p in runs.problems if HELD_ELSEWHERE in p]
    for problem in runs.problems:
        if problem not in elsewhere:
            print(f"left out: {problem}")
    if elsewhere:  # a concurrent multirun's runs: not this one's business, but not forgotten
        runs_ = f"{len(elsewhere)} run{'s' if len(elsewhere) != 1 else ''}"
        print(f"not yet in the table: {runs_} still training in another process")
    print(f"archive: {archive} ({len(records)} runs)")
    print(f"full report: python scripts/report.py {results} {archive}")


if __name__ == "__main__":
    results_dir, experiment = sys.argv[1:3]
    print_summary(OmegaConf.create({"results_dir": results_dir, "experiment_name": experiment}))
