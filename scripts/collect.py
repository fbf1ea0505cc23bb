"""Collect a results tree (one experiment, or a results_dir) into tables; read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from trainers.results import ENDED, RunPath, read_meta, run_folders, stale


@dataclass
class Runs:
    """Every run found: one row each in ``index``, its per-step base-weights loss in ``curves``."""

    index: pd.DataFrame
    curves: dict[tuple[str, str, int], pd.Series] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _family(run: Path) -> str:
    config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    return str(config.get("optimizer", {}).get("family", "other"))


def load_runs(root: Path) -> Runs:
    """Finished and diverged runs with their curves; anything else is listed in ``problems``."""
    rows, curves, problems = [], {}, []
    for run in run_folders(root):
        where = run.relative_to(root)
        meta = read_meta(run)
        if meta is None:
            problems.append(f"{where}: no meta.json, left out")
            continue
        path = RunPath.parse(run)
        status = meta.get("status", "unknown")
        steps_csv = run / "steps.csv"
        if status in ENDED and stale(meta):
            problems.append(f"{where}: {stale(meta)}, left out")
            continue
        if status not in ENDED or not steps_csv.is_file():
            problems.append(f"{where}: status {status}, left out")
            continue
        steps = pd.read_csv(steps_csv)
        curves[(path.task, path.optimizer, path.seed)] = steps.set_index("step")["loss_base"]
        evals = pd.read_csv(run / "evals.csv") if (run / "evals.csv").is_file() else None
        test = evals[evals["stage"] == "test"] if evals is not None else pd.DataFrame()
        rows.append(
            {
                "task": path.task,
                "family": _family(run),
                "optimizer": path.optimizer,
                "seed": path.seed,
                "status": status,
                "steps": int(steps["step"].iloc[-1]) if len(steps) else 0,
                "steps_per_s": meta.get("steps_per_s"),
                "test_loss": float(test["loss"].iloc[-1]) if len(test) else float("nan"),
                "test_accuracy": (
                    float(test["accuracy"].iloc[-1])
                    if len(test) and "accuracy" in test and test["accuracy"].notna().any()
                    else float("nan")
                ),
            }
        )
    columns = [
        "task",
        "family",
        "optimizer",
        "seed",
        "status",
        "steps",
        "steps_per_s",
        "test_loss",
        "test_accuracy",
    ]
    return Runs(pd.DataFrame(rows, columns=columns), curves, problems)
