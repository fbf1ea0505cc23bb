"""Read a results tree (``<dir>/<task>/<optimizer>/seed=<s>/``) into tables; read-only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from trainers.results import stale


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
    for meta_path in sorted(root.glob("**/seed=*/meta.json")):
        run = meta_path.parent
        task, optimizer, seed = run.parent.parent.name, run.parent.name, int(run.name[5:])
        meta = json.loads(meta_path.read_text())
        status = meta.get("status", "unknown")
        steps_csv = run / "steps.csv"
        if status in ("finished", "diverged") and stale(meta):
            problems.append(f"{run.relative_to(root)}: {stale(meta)}, left out")
            continue
        if status not in ("finished", "diverged") or not steps_csv.is_file():
            problems.append(f"{run.relative_to(root)}: status {status}, left out")
            continue
        steps = pd.read_csv(steps_csv)
        curves[(task, optimizer, seed)] = steps.set_index("step")["loss_base"]
        evals = pd.read_csv(run / "evals.csv") if (run / "evals.csv").is_file() else None
        test = evals[evals["stage"] == "test"] if evals is not None else pd.DataFrame()
        rows.append(
            {
                "task": task,
                "family": _family(run),
                "optimizer": optimizer,
                "seed": seed,
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
    for dirpath in sorted(root.glob("**/seed=*")):
        if dirpath.is_dir() and not (dirpath / "meta.json").is_file():
            problems.append(f"{dirpath.relative_to(root)}: no meta.json, left out")
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
