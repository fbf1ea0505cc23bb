"""Each optimizer's learning rate from a tuning grid, by rules fixed before the grid ran (#31).

A tuning grid (``experiment=tuned``: every optimizer at its family's rate × 2^k, each rate filed
apart as ``<optimizer>_lr<rate>``, on tuning seeds) is read from results folders or archives.
Per task and family, the target T is the paper's: the baseline's (CM, AdamW) seed-mean curve
at the task's own rate, trailing ``--window``-step means, T = a[0] − f · (a[0] − a[−1]) with
f = ``--fraction``. Each optimizer then takes, among its rates:

- ``steps`` (the rule, AlgoPerf's): the fewest steps to T, averaged over the tuning seeds; a seed
  that diverged or never reached T counts as never, so such a rate is never chosen over one that
  reaches T on every seed;
- ``final`` (the second rule, to show how much the answer depends on the rule): the lowest final
  training loss at base weights (the last full window's mean), averaged over seeds; a diverged
  seed counts as infinite.

Ties go to the smaller rate. Writes ``tuned_rates.csv`` (every optimizer's choice under both
rules), ``rate_grid.csv`` (every rate's per-seed steps to T and final loss) and, per task,
``sensitivity_<task>.png`` (steps to T and final loss against the rate, one line per optimizer,
the seeds' range shaded, diverged rates marked), and prints the choices.

    python scripts/tune.py results/tuned [more folders or archives] [--out DIR]
"""

from __future__ import annotations

import argparse
import functools
import math
import re
import sys
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.collect import read_sources  # noqa: E402
from scripts.threshold import DEFAULT_BASELINES, WINDOW, first_index, trailing_mean  # noqa: E402
from trainers.archive import RunRecord, is_archive  # noqa: E402
from trainers.results import Status  # noqa: E402

RATED = re.compile(r"^(?P<optimizer>.+)_lr(?P<rate>[0-9.eE+-]+)$")
RULES = ("steps", "final")


@functools.cache
def task_rate(task: str, hparams: str, family: str) -> float:
    """The task's own learning rate for ``family`` under ``hparams``: the grid's scale 1."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", [f"task={task}", f"hparams={hparams}"])
    return float(cfg.task[family].lr)


def rate_grid(records: list[RunRecord], window: int, fraction: float) -> pd.DataFrame:
    """One row per run of the grid: its optimizer and rate, steps to T (inf: never) and final
    loss (inf: diverged); T per task and family from the baseline at the task's rate."""
    rows = []
    for r in records:
        match = RATED.match(r.key.optimizer)
        if match is None:
            continue
        config = yaml.safe_load(r.config_yaml)
        family = str(config["optimizer"]["family"])
        hparams = str((config.get("hparams") or {}).get("name", "current"))
        diverged = r.meta.get("status") != Status.FINISHED
        smoothed = trailing_mean(r.steps["loss_base"].to_numpy(), window)
        rows.append(
            {
                "task": r.key.task,
                "family": family,
                "optimizer": match["optimizer"],
                "rate": float(config["task"][family]["lr"]),  # exact, where the label rounds
                "task_rate": task_rate(r.key.task, hparams, family),
                "seed": r.key.seed,
                "status": r.meta.get("status"),
                "smoothed": smoothed,
                "final": math.inf if diverged or not len(smoothed) else float(smoothed[-1]),
            }
        )
    grid = pd.DataFrame(rows)
    if grid.empty:
        return grid
    steps = []
    for (task, family), g in grid.groupby(["task", "family"]):
        base = g[(g["optimizer"] == DEFAULT_BASELINES[str(family)]) & (g["rate"] == g["task_rate"])]
        done = base[base["status"] == Status.FINISHED]
        if done.empty:
            raise ValueError(
                f"{task}: no finished {DEFAULT_BASELINES[str(family)]} run at the task's rate "
                f"{g['task_rate'].iloc[0]:g} in the grid, so no target T"
            )
        shortest = min(map(len, done["smoothed"]))
        mean = np.mean(np.stack([s[:shortest] for s in done["smoothed"]]), axis=0)
        threshold = mean[0] - fraction * (mean[0] - mean[-1])
        for i, row in g.iterrows():
            at = first_index(row["smoothed"], threshold) if row["final"] < math.inf else math.nan
            steps.append((i, math.inf if math.isnan(at) else at + window, threshold))
    index, values, thresholds = zip(*steps, strict=True)
    grid.loc[list(index), "steps_to_t"] = values
    grid.loc[list(index), "threshold"] = thresholds
    return grid.drop(columns="smoothed").sort_values(
        ["task", "family", "optimizer", "rate", "seed"]
    )


def choose(grid: pd.DataFrame) -> pd.DataFrame:
    """Each optimizer's rate under each rule: the best seed-mean score, ties to the smaller rate."""
    scores = grid.groupby(["task", "family", "optimizer", "rate", "task_rate"], as_index=False).agg(
        steps=("steps_to_t", "mean"), final=("final", "mean"), seeds=("seed", "nunique")
    )
    rows = []
    for (task, family, optimizer), g in scores.groupby(["task", "family", "optimizer"]):
        for rule in RULES:
            best = g.sort_values([rule, "rate"]).iloc[0]
            rows.append(
                {
                    "task": task,
                    "family": family,
                    "optimizer": optimizer,
                    "rule": rule,
                    "rate": best["rate"],
                    "scale": best["rate"] / best["task_rate"],
                    "score": best[rule],
                    "seeds": int(best["seeds"]),
                    "rates_tried": len(g),
                }
            )
    return pd.DataFrame(rows)


def plot_sensitivity(grid: pd.DataFrame, task: str, path: Path) -> None:
    """Steps to T and final loss against the rate: seed means, the seeds' range shaded, an x
    where a seed diverged or never reached T."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for opt, g in grid[grid["task"] == task].groupby("optimizer"):
        for ax, column in zip(axes, ("steps_to_t", "final"), strict=True):
            by_rate = g.groupby("rate")[column]
            finite = g[np.isfinite(g[column])].groupby("rate")[column]
            mean = by_rate.mean().replace(math.inf, np.nan)
            (line,) = ax.plot(mean.index, mean.to_numpy(), marker="o", label=opt)
            ax.fill_between(
                finite.min().index, finite.min(), finite.max(), color=line.get_color(), alpha=0.15
            )
            lost = g[~np.isfinite(g[column])]["rate"].unique()
            top = np.nanmax(mean.to_numpy()) if np.isfinite(mean).any() else 1.0
            ax.scatter(lost, [top] * len(lost), marker="x", color=line.get_color())
    rates = sorted(grid.loc[grid["task"] == task, "rate"].unique())
    labels = ("steps to T (seed mean)", "final loss at base weights")
    for ax, label in zip(axes, labels, strict=True):
        ax.set(xscale="log", xlabel="learning rate", ylabel=label)
        ax.set_xticks(rates, [f"{r:g}" for r in rates], fontsize=7)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{task}: learning-rate sensitivity (x: a seed diverged or never reached T)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="results folders and archives")
    parser.add_argument("--out", type=Path, help="default: the first folder's tuning/")
    parser.add_argument("--window", type=int, default=WINDOW, help="trailing mean, steps")
    parser.add_argument("--fraction", type=float, default=0.95, help="of the loss reduction")
    args = parser.parse_args(argv)
    for source in args.results:
        if not source.is_dir():
            parser.exit(2, f"{parser.prog}: error: results folder {source} does not exist\n")
    records, _ = read_sources(args.results)
    try:
        grid = rate_grid(records, args.window, args.fraction)
    except ValueError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    if grid.empty:
        parser.exit(2, f"{parser.prog}: error: no runs filed by rate (lr_in_label=true) found\n")
    first = args.results[0]
    out = args.out or (first.parent if is_archive(first) else first) / "tuning"
    out.mkdir(parents=True, exist_ok=True)
    chosen = choose(grid)
    grid.to_csv(out / "rate_grid.csv", index=False)
    chosen.to_csv(out / "tuned_rates.csv", index=False)
    for task in sorted(grid["task"].unique()):
        plot_sensitivity(grid, task, out / f"sensitivity_{task}.png")
    wide = chosen.pivot(index=["task", "optimizer"], columns="rule", values=["rate", "score"])
    print(wide.to_string(float_format=lambda v: f"{v:g}"))
    print(f"tuning: {out}")


if __name__ == "__main__":
    main()
