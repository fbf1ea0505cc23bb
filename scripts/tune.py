"""Each optimizer's learning rate from a tuning grid, by rules fixed before the grid ran.

A tuning grid (``experiment=tuned``: every optimizer at its family's rate × 2^k, each rate filed
apart as ``<optimizer>_lr<rate>``, on tuning seeds) is read from results folders or archives.
Per task and family, T is the paper's: the baseline's (CM, AdamW) seed-mean curve at the task's
own rate, trailing W-step means, T = a[0] − f · (a[0] − a[−1]). Two protocols:

- ``--protocol v2`` (the default; results/tuned_v2/README.md, scripts/protocol_v2.py): W from
  the budget, a lost tuning seed scoring ∞, the choice one octave below any rate that loses a
  seed, and ``widen.sh``, the octaves the grid still needs before its choices lie inside it.
  The evaluation reports seeds reaching T, diverged seeds, AlgoPerf's median with misses ∞ and
  the per-seed paired saving in real steps, the paper's index at W = 400 beside; given
  evaluation sources, ``evaluate.sh`` holds only the multiruns they still lack.
- ``--protocol v1`` (#31; re-derives results/tuned and results/tuned_wide): W = 400; ``steps``,
  the fewest seed-mean steps to T (a seed that diverged or never reached T counting as never),
  and ``final``, the lowest final loss; ties to the smaller rate.

Writes ``tuned_rates.csv`` (every optimizer's choice under both rules), ``rate_grid.csv`` (every
rate's per-seed steps to T and final loss), per task ``sensitivity_<task>.png``, and
``evaluate.sh``: the main.py commands that re-run each choice on the evaluation seeds
(``experiment=tuned_eval``). Given those runs (``--evaluation``), it writes the tuned table
(``tuned_table.csv`` / ``.md``): each optimizer at its chosen rate against the tuned baseline,
paired by seed, at T from the baseline at the task's own rate on the evaluation seeds.

    python scripts/tune.py results/tuned_v2 [more folders or archives] [--out DIR]
    bash results/tuned_v2/tuning/widen.sh            # until it is empty, then
    bash results/tuned_v2/tuning/evaluate.sh
    python scripts/tune.py results/tuned_v2 --evaluation results/tuned_v2_eval
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import re
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from scripts import protocol_v2
from scripts.collect import read_sources, runs_from
from scripts.threshold import (
    DEFAULT_BASELINES,
    WINDOW,
    first_index,
    seed_mean,
    steps_to_threshold,
    trailing_mean,
)
from trainers.archive import RunRecord, is_archive
from trainers.results import Status

ROOT = Path(__file__).resolve().parents[1]

RATED = re.compile(r"^(?P<optimizer>.+)_lr(?P<rate>[0-9.eE+-]+)$")
RULES = ("steps", "final")
EVALUATION_SEEDS = "10,20,30,40,50,60,70,80,90,100"  # the paper's; never the tuning seeds


@functools.cache
def task_rate(task: str, hparams: str, family: str) -> float:
    """The task's own learning rate for ``family`` under ``hparams``: the grid's scale 1."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", [f"task={task}", f"hparams={hparams}"])
    return float(cfg.task[family].lr)


def rated(record: RunRecord) -> dict[str, Any] | None:
    """What a run of a rate grid is (task, family, optimizer without its rate, the rate from its
    config, exact where the label's :g rounds, the task's own rate, and what composes it again),
    or None for a run not filed by its rate."""
    match = RATED.match(record.key.optimizer)
    if match is None:
        return None
    config = record.config
    family = str(config["optimizer"]["family"])
    hparams = str((config.get("hparams") or {}).get("name", "current"))
    return {
        "task": record.key.task,
        "family": family,
        "optimizer": match["optimizer"],
        "rate": float(config["task"][family]["lr"]),
        "task_rate": task_rate(record.key.task, hparams, family),
        "hparams": hparams,
        "name": str(config["optimizer"]["name"]),
        "overshoot": config["optimizer"].get("overshoot"),
        "seed": record.key.seed,
        "status": record.meta.get("status"),
    }


def target(curves: list[np.ndarray], window: int, fraction: float) -> float:
    """The paper's T on the seed-mean of ``curves``: a[0] − f · (a[0] − a[−1]); none (NaN)
    where the curves are no longer than one window."""
    mean = trailing_mean(seed_mean(pd.Series(c) for c in curves).to_numpy(), window)
    return float(mean[0] - fraction * (mean[0] - mean[-1])) if len(mean) else math.nan


def baseline_targets(
    records: list[RunRecord], window: int, fraction: float
) -> dict[tuple[str, str], float]:
    """T per (task, family): the baseline's (CM, AdamW) finished runs at the task's own rate."""
    curves: dict[tuple[str, str], list[np.ndarray]] = {}
    for r in records:
        run = rated(r)
        if run is None or run["status"] != Status.FINISHED or run["rate"] != run["task_rate"]:
            continue
        if run["optimizer"] == DEFAULT_BASELINES.get(run["family"]):
            curve = r.steps["loss_base"].to_numpy(dtype=np.float64)
            curves.setdefault((run["task"], run["family"]), []).append(curve)
    return {key: target(c, window, fraction) for key, c in curves.items()}


def rate_grid(records: list[RunRecord], window: int, fraction: float) -> pd.DataFrame:
    """One row per run of the grid: its optimizer and rate, steps to T (inf: never) and final
    loss (inf: diverged); T per task and family from the baseline at the task's rate."""
    rows, smoothed = [], []
    for r in records:
        run = rated(r)
        if run is None:
            continue
        curve = trailing_mean(r.steps["loss_base"].to_numpy(), window)
        diverged = run["status"] != Status.FINISHED
        run["final"] = math.inf if diverged or not len(curve) else float(curve[-1])
        rows.append(run)
        smoothed.append(curve)
    grid = pd.DataFrame(rows)
    if grid.empty:
        return grid
    targets = baseline_targets(records, window, fraction)
    for (task, family), g in grid.groupby(["task", "family"]):
        if (task, family) not in targets:
            raise ValueError(
                f"{task}: no finished {DEFAULT_BASELINES[str(family)]} run at the task's rate "
                f"{g['task_rate'].iloc[0]:g} in the grid, so no target T"
            )
        threshold = targets[(task, family)]
        for i in g.index:
            at = first_index(smoothed[i], threshold) if grid.at[i, "final"] < math.inf else math.nan
            grid.loc[i, ["steps_to_t", "threshold"]] = (
                math.inf if math.isnan(at) else at + window,
                threshold,
            )
    return grid.sort_values(["task", "family", "optimizer", "rate", "seed"])


def choose(grid: pd.DataFrame) -> pd.DataFrame:
    """Each optimizer's rate under each rule: the best seed-mean score, ties to the smaller rate."""
    scores = grid.groupby(["task", "family", "optimizer", "rate", "task_rate"], as_index=False).agg(
        steps=("steps_to_t", "mean"), final=("final", "mean"), seeds=("seed", "nunique")
    )
    rows = []
    for (task, family, optimizer), g in scores.groupby(["task", "family", "optimizer"]):
        for rule in RULES:
            best = g.sort_values([rule, "rate"]).iloc[0]
            edge = {g["rate"].min(): "smallest", g["rate"].max(): "largest"}.get(best["rate"], "")
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
                    "grid_edge": edge,  # the best may lie outside the grid: widen it
                }
            )
    return pd.DataFrame(rows)


def evaluation_commands(
    grid: pd.DataFrame, chosen: pd.DataFrame, seeds: str, experiment: str = ""
) -> dict[tuple[str, str, float], str]:
    """The protocol's last step as main.py multiruns, keyed by (task, optimizer, rate): each
    optimizer at its rate by the rule ``steps`` on the evaluation ``seeds`` (one job, seeds as
    members), and each baseline at the task's own rate too, which sets T, where that is not its
    chosen rate; filed under ``experiment`` where one is named (else experiment=tuned_eval's)."""
    picks = chosen[(chosen["rule"] == "steps") & chosen["rate"].notna()]
    how = grid.drop_duplicates(["task", "optimizer"]).set_index(["task", "optimizer"])
    named = f" experiment_name={experiment}" if experiment else ""
    commands = {}
    for row in picks.itertuples():
        run = how.loc[(row.task, row.optimizer)]
        rates = [row.rate]
        if row.optimizer == DEFAULT_BASELINES.get(str(row.family)) and row.rate != run.task_rate:
            rates.append(run.task_rate)
        gamma = (
            f" optimizer.overshoot={float(run.overshoot):g}"
            if pd.notna(run.overshoot)  # an optimizer without γ has none
            else ""
        )
        for rate in rates:
            commands[(row.task, row.optimizer, float(rate))] = (
                f"python main.py -m experiment=tuned_eval{named} task={row.task} "
                f"hparams={run.hparams} optimizer={run['name']}{gamma} "
                f"task.{row.family}.lr={float(rate)!r} seed={seeds} vectorize=true"
            )
    return commands


def tuned_table(
    records: list[RunRecord], chosen: pd.DataFrame, window: int, fraction: float
) -> pd.DataFrame:
    """Each optimizer at its chosen rate (rule ``steps``) against the family's baseline at the
    baseline's chosen rate, paired by seed, at T from the baseline at the task's own rate (the T
    the rates were chosen for): the report's steps, saving, interval and p."""
    picks = chosen[chosen["rule"] == "steps"].set_index(["task", "optimizer"])["rate"]
    kept = []
    for r in records:
        run = rated(r)
        if run is not None and picks.get((run["task"], run["optimizer"])) == run["rate"]:
            key = dataclasses.replace(r.key, optimizer=run["optimizer"])
            kept.append(dataclasses.replace(r, key=key))
    targets = baseline_targets(records, window, fraction)
    runs = runs_from(kept, [])
    tables = []
    for task in sorted(runs.index["task"].unique()):
        given = {family: [t] for (on, family), t in targets.items() if on == task}
        for family in set(runs.index.loc[runs.index["task"] == task, "family"]) - set(given):
            raise ValueError(
                f"{task}: no finished {DEFAULT_BASELINES.get(family, family)} run at the task's "
                "rate among the evaluation runs, so no target T (evaluate.sh runs it)"
            )
        tables.append(steps_to_threshold(runs, task, [fraction], window, targets=given))
    if not tables:
        return pd.DataFrame()
    table = pd.concat(tables, ignore_index=True)
    edges = chosen[chosen["rule"] == "steps"].set_index(["task", "optimizer"])["grid_edge"]
    table.insert(3, "rate", [picks[(r.task, r.optimizer)] for r in table.itertuples()])
    table.insert(4, "grid_edge", [edges[(r.task, r.optimizer)] for r in table.itertuples()])
    return table


def tuned_table_v2(
    records: list[RunRecord], chosen: pd.DataFrame, windows: dict[str, int], fraction: float
) -> pd.DataFrame:
    """Protocol v2's evaluation (results/tuned_v2/README.md, 6-7): each optimizer at its chosen
    rate on the evaluation seeds against the tuned baseline, at T from the task-rate baseline
    with the task's window W, and at the paper's T with W = 400 for its index. A family whose
    baseline has no rate (none of its grid kept every tuning seed) has no rows."""
    picks = chosen[(chosen["rule"] == "steps") & chosen["rate"].notna()]
    picks = picks.set_index(["task", "optimizer"])
    curves: dict[tuple[str, str], dict[int, tuple[np.ndarray, bool]]] = {}
    task_rate: dict[tuple[str, str], list[np.ndarray]] = {}
    for r in records:
        run = rated(r)
        if run is None:
            continue
        curve = r.steps["loss_base"].to_numpy(dtype=np.float64)
        finished = run["status"] == Status.FINISHED
        baseline = DEFAULT_BASELINES.get(run["family"])
        if run["optimizer"] == baseline and run["rate"] == run["task_rate"] and finished:
            task_rate.setdefault((run["task"], run["family"]), []).append(curve)
        key = (run["task"], run["optimizer"])
        if key in picks.index and picks.at[key, "rate"] == run["rate"]:
            curves.setdefault(key, {})[run["seed"]] = (curve, finished)
    rows = []
    for (task, optimizer), seeds in sorted(curves.items()):
        family = str(picks.at[(task, optimizer), "family"])
        baseline = DEFAULT_BASELINES[family]
        if (task, baseline) not in picks.index:
            continue  # no rate of the baseline's grid kept every seed: nothing to compare with
        if (task, family) not in task_rate:
            raise ValueError(
                f"{task}: no finished {baseline} run at the task's rate among the evaluation "
                "runs, so no target T (evaluate.sh runs it)"
            )
        if (task, baseline) not in curves:
            continue  # its family waits for the tuned baseline's runs (evaluate.sh lists them)
        window = windows[task]
        targets = (
            target(task_rate[(task, family)], window, fraction),
            target(task_rate[(task, family)], WINDOW, fraction),
        )
        pick = picks.loc[(task, optimizer)]
        rows.append(
            {
                "task": task,
                "family": family,
                "optimizer": optimizer,
                "baseline": baseline,
                "rate": pick["rate"],
                "scale": pick["scale"],
                **protocol_v2.evaluation_row(seeds, curves[(task, baseline)], targets, window),
            }
        )
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    table["order"] = table["optimizer"] != table["baseline"]
    table = table.sort_values(["task", "family", "order", "optimizer"]).drop(columns="order")
    bases = table[table["optimizer"] == table["baseline"]].set_index(["task", "family"])
    table["verdict"] = [
        protocol_v2.verdict(r, bases.loc[(r.task, r.family)]) for r in table.itertuples()
    ]
    return table.reset_index(drop=True)


def untuned_baselines(chosen: pd.DataFrame) -> pd.DataFrame:
    """The baselines (CM, AdamW) that protocol v2 gave no rate."""
    steps = chosen[chosen["rule"] == "steps"]
    baselines = steps["optimizer"] == steps["family"].map(DEFAULT_BASELINES)
    return steps[baselines & steps["rate"].isna()]


def tuned_markdown(table: pd.DataFrame) -> str:
    """The tuned table as the report shows savings: the paper's way, then per seed ± 95 % CI,
    and in real steps (index + window) beside them, which differs where T is reached within a
    window or two of the start (the paper's index counts from the first window's end)."""

    def cell(r: Any) -> str:
        censored = f", {r.n_censored} of {r.n_seeds} censored" if r.n_censored else ""
        if r.optimizer == r.baseline:
            notes = ["its seed mean never reaches T"] if math.isnan(r.steps) else []
            notes += [f"{r.n_censored} of {r.n_seeds} censored"] if r.n_censored else []
            return "baseline" + (f" ({', '.join(notes)})" if notes else "")
        if r.n_paired > 1:
            spread = f"{100 * r.savings_seed_mean:.1f} ± {100 * r.savings_ci95:.1f}"
            per_seed = f"{spread}, p={r.p_value:.2g}, {r.n_paired} seeds{censored}"
        else:
            pairs = "seed pair" if r.n_paired == 1 else "seed pairs"
            per_seed = f"no interval: {r.n_paired} {pairs}{censored}"
        if math.isnan(r.savings):  # the paper's way needs both seed means to reach T
            whose = "its" if math.isnan(r.steps) else "the baseline's"
            return f"– ({whose} seed mean never reaches T; per seed {per_seed})"
        return f"{100 * r.savings:.1f} % ({per_seed})"

    shown = pd.DataFrame(
        {
            "task": table["task"],
            "optimizer": table["optimizer"],
            "rate": [
                f"{r.rate:g}" + (" (grid's edge)" if r.grid_edge else "")
                for r in table.itertuples()
            ],
            "steps to T": [f"{v:,.0f}" if math.isfinite(v) else "–" for v in table["steps"]],
            "saving in real steps": [
                "–"
                if r.optimizer == r.baseline or math.isnan(r.savings_real_steps)
                else f"{100 * r.savings_real_steps:.1f} %"
                for r in table.itertuples()
            ],
            "saving vs tuned baseline": [cell(r) for r in table.itertuples()],
        }
    )
    return shown.to_markdown(index=False)


def plot_sensitivity(grid: pd.DataFrame, task: str, path: Path, window: int) -> None:
    """Steps to T and final loss against the rate: seed means, the seeds' range shaded, an x
    where a seed diverged or never reached T, and the trailing window's length, below which no
    crossing can fall (curves that flatten on it have outrun the metric)."""
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
        ax.set_xticks(rates, [f"{r:g}" for r in rates], fontsize=7, rotation=45)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3)
    axes[0].axhline(window, color="grey", linestyle=":")
    axes[0].text(
        0.98,
        window,
        f"{window}-step window: no T sooner",
        transform=axes[0].get_yaxis_transform(),  # x in axes fractions, y in steps
        ha="right",
        va="bottom",
        fontsize=7,
        color="grey",
    )
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
    parser.add_argument(
        "--protocol",
        choices=("v1", "v2"),
        default="v2",
        help="v2 (results/tuned_v2/README.md); v1 re-derives results/tuned and results/tuned_wide",
    )
    parser.add_argument(
        "--window", type=int, help="trailing mean, steps (v1: 400; v2: min(400, budget/100))"
    )
    parser.add_argument("--fraction", type=float, default=0.95, help="of the loss reduction")
    parser.add_argument(
        "--evaluation",
        type=Path,
        nargs="+",
        help="the evaluation runs (experiment=tuned_eval): writes the tuned table",
    )
    parser.add_argument("--seeds", default=EVALUATION_SEEDS, help="evaluation seeds")
    parser.add_argument(
        "--experiment-name",
        default="tuned_v2",
        help="v2: widen.sh files its runs here, evaluate.sh under <name>_eval",
    )
    args = parser.parse_args(argv)
    for source in [*args.results, *(args.evaluation or [])]:
        if not source.is_dir():
            parser.exit(2, f"{parser.prog}: error: results folder {source} does not exist\n")
    records, _ = read_sources(args.results)
    v2 = args.protocol == "v2"
    windows = protocol_v2.task_windows(records)
    if args.window or not v2:
        windows = {task: args.window or WINDOW for task in windows}
    try:
        grid = pd.concat(
            [
                rate_grid([r for r in records if r.key.task == task], window, args.fraction)
                for task, window in sorted(windows.items())
            ]
            or [pd.DataFrame()],
            ignore_index=True,
        )
    except ValueError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    if grid.empty:
        parser.exit(2, f"{parser.prog}: error: no runs filed by rate (lr_in_label=true) found\n")
    first = args.results[0]
    out = args.out or (first.parent if is_archive(first) else first) / "tuning"
    out.mkdir(parents=True, exist_ok=True)
    chosen = protocol_v2.choose(grid) if v2 else choose(grid)
    write_choices(grid, chosen, out, windows, args.experiment_name if v2 else "")
    commands = evaluation_commands(grid, chosen, args.seeds, f"{args.experiment_name}_eval" * v2)
    evaluation = read_sources(args.evaluation)[0] if args.evaluation else []
    if evaluation and v2:
        commands = missing(commands, evaluation, len(args.seeds.split(",")))
    (out / "evaluate.sh").write_text("".join(f"{c}\n" for c in commands.values()))
    if args.evaluation:
        try:
            table = (
                tuned_table_v2(evaluation, chosen, windows, args.fraction)
                if v2
                else tuned_table(evaluation, chosen, args.window or WINDOW, args.fraction)
            )
        except ValueError as e:
            if not (v2 and commands):  # with runs still to come, the table waits for them
                parser.exit(2, f"{parser.prog}: error: {e}\n")
            table = pd.DataFrame()
        if v2:
            for r in untuned_baselines(chosen).itertuples():
                print(
                    f"{r.task} {r.family}: no tuned baseline ({r.optimizer} has no rate), no rows"
                )
        if table.empty and v2 and commands:
            runs = f"{len(commands)} multirun{'s' * (len(commands) != 1)}"
            print(f"the evaluation lacks {runs} (evaluate.sh): no table yet")
            print(f"tuning: {out} (evaluation commands: {out / 'evaluate.sh'})")
            return
        if table.empty:
            parser.exit(2, f"{parser.prog}: error: no run at a chosen rate in the evaluation\n")
        table.to_csv(out / "tuned_table.csv", index=False)
        markdown = protocol_v2.markdown(table) if v2 else tuned_markdown(table)
        (out / "tuned_table.md").write_text(markdown + "\n")
        print(markdown)
        if v2 and commands:
            print(f"the evaluation lacks {len(commands)} multiruns (evaluate.sh); the table waits")
    print(f"tuning: {out} (evaluation commands: {out / 'evaluate.sh'})")


def write_choices(
    grid: pd.DataFrame, chosen: pd.DataFrame, out: Path, windows: dict[str, int], widen_to: str
) -> None:
    """rate_grid.csv, tuned_rates.csv and the sensitivity figures; under v2 (``widen_to``, the
    experiment its runs go to) widen.sh, the octaves the grid still needs."""
    grid.to_csv(out / "rate_grid.csv", index=False)
    chosen.to_csv(out / "tuned_rates.csv", index=False)
    for task in sorted(grid["task"].unique()):
        plot_sensitivity(grid, task, out / f"sensitivity_{task}.png", windows[task])
    wide = chosen.pivot(index=["task", "optimizer"], columns="rule", values=["rate", "score"])
    print(wide.to_string(float_format=lambda v: f"{v:g}"))
    if not widen_to:
        for row in chosen[chosen["grid_edge"] != ""].itertuples():
            print(
                f"{row.task} {row.optimizer}: rule {row.rule} chose {row.rate:g}, the grid's "
                f"{row.grid_edge} rate; the best may lie beyond it"
            )
        return
    widen = protocol_v2.widen_commands(grid, chosen, widen_to)
    (out / "widen.sh").write_text("".join(f"{c}\n" for c in widen))
    for row in chosen[(chosen["rule"] == "steps") & (chosen["note"] != "")].itertuples():
        print(f"{row.task} {row.optimizer}: {row.note}")
    if widen:
        print(f"the grid widens first: {len(widen)} multiruns in {out / 'widen.sh'}")


def missing(
    commands: dict[tuple[str, str, float], str], evaluation: list[RunRecord], seeds: int
) -> dict[tuple[str, str, float], str]:
    """The evaluation multiruns whose runs the evaluation sources do not yet hold, every seed."""
    held: dict[tuple[str, str, float], int] = {}
    for r in evaluation:
        run = rated(r)
        if run is not None:
            key = (run["task"], run["optimizer"], run["rate"])
            held[key] = held.get(key, 0) + 1
    return {key: c for key, c in commands.items() if held.get(key, 0) < seeds}


if __name__ == "__main__":
    main()
