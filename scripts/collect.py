"""Collect a results tree (one experiment, or a results_dir) into tables; read-only."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from trainers.results import ENDED, RunPath, read_meta, run_folders, stale


@dataclass
class Runs:
    """Every run found: one row each in ``index``, its per-step base-weights loss in ``curves``."""

    index: pd.DataFrame
    curves: dict[tuple[str, str, int], pd.Series] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def step_time(meta: dict[str, Any]) -> tuple[float, str]:
    """(seconds per training step, how it was measured): the median of the steps' own
    durations, or for runs of earlier versions their training wall time over their steps,
    which also held process warm-up, file writes and compilation."""
    if meta.get("step_time_s") is not None:
        return float(meta["step_time_s"]), "step median"
    if meta.get("steps_per_s"):
        return 1.0 / float(meta["steps_per_s"]), "old: training wall time / steps"
    return math.nan, ""


def time_compute(config: dict[str, Any], meta: dict[str, Any]) -> str:
    """What a run's step time depends on beyond its optimizer: the kernels asked for, the
    device, the CPU threads and whether it ran as a vectorized member."""
    kernels = config.get("kernels")
    if kernels is None and "fused" in config:  # before ``kernels`` replaced it
        kernels = "fused" if config["fused"] else "foreach"
    where = meta.get("device_name") or meta.get("device") or "?"
    if meta.get("cpu_threads") and str(meta.get("device", "cpu")).startswith("cpu"):
        where += f" {meta['cpu_threads']} threads"
    member = " members" if "members" in meta else ""
    return f"kernels={kernels or '?'} {where}{member}"


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
        config = yaml.safe_load((run / "config.yaml").read_text()) or {}
        seconds, basis = step_time(meta)
        curves[(path.task, path.optimizer, path.seed)] = steps.set_index("step")["loss_base"]
        evals = pd.read_csv(run / "evals.csv") if (run / "evals.csv").is_file() else None
        test = evals[evals["stage"] == "test"] if evals is not None else pd.DataFrame()
        rows.append(
            {
                "task": path.task,
                "family": str(config.get("optimizer", {}).get("family", "other")),
                "optimizer": path.optimizer,
                "seed": path.seed,
                "status": status,
                "steps": int(steps["step"].iloc[-1]) if len(steps) else 0,
                "step_time_s": seconds,
                "step_time_iqr_s": meta.get("step_time_iqr_s") or math.nan,
                "time_basis": basis,
                "compile_time_s": meta.get("compile_time_s", math.nan),
                "compute": time_compute(config, meta),
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
        "step_time_s",
        "step_time_iqr_s",
        "time_basis",
        "compile_time_s",
        "compute",
        "test_loss",
        "test_accuracy",
    ]
    return Runs(pd.DataFrame(rows, columns=columns), curves, problems)
