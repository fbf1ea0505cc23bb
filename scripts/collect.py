"""Collect runs into tables, read-only: from results folders and archives alike, several at once,
each run counted once (trainers/archive.py holds both forms)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trainers.archive import (
    MergeError,
    RunRecord,
    check_same,
    is_archive,
    read_archive,
    read_folder,
)
from trainers.results import run_folders

INDEX_COLUMNS = [
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
    device, the CPU threads and, for a vectorized member, its job's size (a member's step time
    is its share of the job's, and a larger job spreads the per-step overhead thinner)."""
    kernels = config.get("kernels")
    if kernels is None and "fused" in config:  # before ``kernels`` replaced it
        kernels = "fused" if config["fused"] else "foreach"
    where = meta.get("device_name") or meta.get("device") or "?"
    if meta.get("cpu_threads") and str(meta.get("device", "cpu")).startswith("cpu"):
        where += f" {meta['cpu_threads']} threads"
    member = f" {meta['members']} members" if "members" in meta else ""
    return f"kernels={kernels or '?'} {where}{member}"


def read_sources(sources: list[Path], replace: bool = False) -> tuple[list[RunRecord], list[str]]:
    """Every ended run in ``sources`` (results folders and archives) once, in folder order, and
    the runs left out and why. The same run in two sources (same task, optimizer and seed, same
    curve and settings) counts once; with other curves or settings it is refused (MergeError
    naming both), or with ``replace`` the earlier source's run stands (a run trained again with
    force=true replaces its archived self)."""
    found: dict[tuple[str, str, int], RunRecord] = {}
    problems = []
    for source in sources:
        if is_archive(source):
            records = read_archive(source)
        else:
            records = []
            for folder in run_folders(source):
                record = read_folder(folder)
                if isinstance(record, str):
                    problems.append(f"{folder.relative_to(source)}: {record}, left out")
                else:
                    records.append(record)
        for record in records:
            key = (record.key.task, record.key.optimizer, record.key.seed)
            if key in found:
                try:
                    check_same(found[key], record)
                except MergeError:
                    if not replace:
                        raise
                    problems.append(f"{record.name} in {source}: replaced by {found[key].source}")
            else:
                found[key] = record
    order = sorted(found.values(), key=lambda r: (*r.name.split("/")[:3], f"seed={r.key.seed}"))
    return order, problems


def load_runs(*sources: Path) -> Runs:
    """The finished and diverged runs of ``sources`` with their curves; anything else found in
    a results folder is listed in ``problems``."""
    return runs_from(*read_sources(list(sources)))


def runs_from(records: list[RunRecord], problems: list[str]) -> Runs:
    rows, curves = [], {}
    for record in records:
        config = record.config
        seconds, basis = step_time(record.meta)
        key = record.key
        curves[(key.task, key.optimizer, key.seed)] = record.steps.set_index("step")[
            "loss_base"
        ].astype("float64")
        evals = record.evals
        test = evals[evals["stage"] == "test"] if len(evals) else pd.DataFrame()
        rows.append(
            {
                "task": key.task,
                "family": str(config.get("optimizer", {}).get("family", "other")),
                "optimizer": key.optimizer,
                "seed": key.seed,
                "status": record.meta.get("status", "unknown"),
                "steps": int(record.steps["step"].iloc[-1]) if len(record.steps) else 0,
                "step_time_s": seconds,
                "step_time_iqr_s": record.meta.get("step_time_iqr_s") or math.nan,
                "time_basis": basis,
                "compile_time_s": record.meta.get("compile_time_s", math.nan),
                "compute": time_compute(config, record.meta),
                "test_loss": float(test["loss"].iloc[-1]) if len(test) else math.nan,
                "test_accuracy": (
                    float(test["accuracy"].iloc[-1])
                    if len(test) and "accuracy" in test and test["accuracy"].notna().any()
                    else math.nan
                ),
            }
        )
    return Runs(pd.DataFrame(rows, columns=INDEX_COLUMNS), curves, problems)
