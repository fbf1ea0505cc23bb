"""The tuned comparison across tasks (issue #43): each task's tuned table side by side.

Reads each task folder's ``tuning/tuned_table.csv`` (``scripts/tune.py --evaluation``) and its
evaluation runs, and writes into ``--out``:

- ``cross_task.md`` / ``.csv``: per family, rows tasks, columns the baseline's steps to T and
  each optimizer's per-seed paired saving against the tuned baseline (real steps, mean ± 95 % CI);
  the mean over tasks with a 95 % CI across tasks (t, tasks as the samples) and the paper's
  7-task averages beside; the performance profile at a few τ.
- ``mean_over_tasks.csv``, ``performance_profile.csv``: those two as data.
- ``performance_profile.png``: AlgoPerf's profile per family, the share of tasks on which an
  optimizer's median steps to T (a miss infinite) is within τ × the family's fastest, τ ≤ 4.
- ``loss_curves_<task>.png``: each optimizer's seed-mean loss at the deployed weights at its
  chosen rate on the evaluation seeds, smoothed over the task's window, T drawn.

    python scripts/cross_task.py results/cross_task/cpu/vae_mnist results/tuned_v2 \
        --tasks mlp_housing,vae_mnist --out results/cross_task/cpu/summary
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from scripts.threshold import DEFAULT_BASELINES, ci95, one_sample_p, seed_mean, trailing_mean
from trainers.archive import is_archive, read_archive

# Where a task folder keeps its evaluation runs: the campaign's, then results/tuned_v2's.
EVALUATIONS = ("grid_eval/archive", "evaluation")
FAMILIES = {
    "sgd": ["sgd_nesterov", "sgdo_g3", "sgdo_g5", "sgdo_g7"],
    "adam": ["nadam", "adamo_g3", "adamo_g5", "adamo_g7"],
}
# arXiv 2501.09556's averages over its 7 tasks (shared rate, the paper's index): ALGORITHMS.md.
PAPER_MEAN = {
    "sgdo_g3": 0.238,
    "sgdo_g5": 0.262,
    "sgdo_g7": 0.265,
    "adamo_g3": 0.153,
    "adamo_g5": 0.195,
    "adamo_g7": 0.201,
}
TAUS = (1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0)


def evaluation_archive(folder: Path) -> Path:
    for name in EVALUATIONS:
        if is_archive(folder / name):
            return folder / name
    raise FileNotFoundError(f"no evaluation archive ({' or '.join(EVALUATIONS)}) in {folder}")


def read_tables(
    folders: list[Path], tasks: list[str] | None
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """The tasks' tuned tables, one row per task and optimizer, tasks in the order given, and
    the folder each task's table came from."""
    tables = {f: pd.read_csv(f / "tuning" / "tuned_table.csv") for f in folders}
    where = {task: f for f, t in tables.items() for task in t["task"]}
    order = tasks or list(where)
    unknown = [t for t in order if t not in where]
    if unknown:
        raise ValueError(f"no tuned table holds {', '.join(unknown)}; they hold {', '.join(where)}")
    table = pd.concat(tables.values(), ignore_index=True)
    table = table[table["task"].isin(order)]
    table = table.assign(task=pd.Categorical(table["task"], order, ordered=True))
    return table.sort_values(["task", "family"], kind="stable"), {t: where[t] for t in order}


def cell(r: pd.Series) -> str:
    """A saving with its verdict where it is not "saves", and the seeds that reach T where
    fewer than all do (a lost seed makes it lose, whatever the others saved)."""
    if math.isnan(r.saving_paired):
        return f"{r.reached} of {r.seeds} reach T"
    notes = [f"{r.reached} of {r.seeds} reach T"] if r.reached < r.seeds else []
    notes += [] if r.verdict == "saves" else [str(r.verdict)]
    spread = f"{100 * r.saving_paired:.1f} ± {100 * r.saving_paired_ci95:.1f} %"
    return spread + (f" ({'; '.join(notes)})" if notes else "")


def family_table(table: pd.DataFrame, family: str) -> pd.DataFrame:
    """Rows tasks, columns the baseline's median steps to T and each optimizer's saving; a task
    whose baseline has no rate (no rate of its grid kept every tuning seed) has no savings."""
    rows = []
    for task, g in table.groupby("task", observed=True):
        by = g[g["family"] == family].set_index("optimizer")
        base = by[by.index == by["baseline"]]
        if base.empty:
            rows.append({"task": task, "baseline steps to T": "no tuned baseline"})
            continue
        row = {"task": task, "baseline steps to T": f"{base['median_steps'].iloc[0]:,.0f}"}
        for opt in FAMILIES[family]:
            row[opt] = cell(by.loc[opt]) if opt in by.index else "no rate"
        rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def mean_over_tasks(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for family, opts in FAMILIES.items():
        for opt in opts:
            g = table[(table["optimizer"] == opt) & table["saving_paired"].notna()]
            values = g["saving_paired"].to_numpy(dtype=np.float64)
            rows.append(
                {
                    "family": family,
                    "optimizer": opt,
                    "n_tasks": len(values),
                    "saving_mean": values.mean() if len(values) else math.nan,
                    "saving_ci95": ci95(values),
                    "p_value": one_sample_p(values),
                    "saves": int((g["verdict"] == "saves").sum()),
                    "loses": int((g["verdict"] == "loses").sum()),
                    "tasks": " ".join(map(str, g["task"])),
                    "paper_7_task_mean": PAPER_MEAN.get(opt, math.nan),
                }
            )
    return pd.DataFrame(rows)


def profile_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Per family, rows tasks, columns optimizers (baseline included): median steps to T over
    the family's fewest on that task; a miss is infinite."""
    parts = []
    for family, opts in FAMILIES.items():
        g = table[table["family"] == family]
        if g.empty:
            continue
        steps = g.pivot_table(
            index="task", columns="optimizer", values="median_steps", observed=True
        )
        steps = steps[[o for o in [DEFAULT_BASELINES[family], *opts] if o in steps.columns]]
        ratios = steps.div(steps.replace(np.inf, np.nan).min(axis=1), axis=0).fillna(np.inf)
        parts.append(ratios.stack().rename("ratio").reset_index().assign(family=family))
    return pd.concat(parts, ignore_index=True)


def performance_profile(ratios: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    rows = [
        {"family": fam, "optimizer": opt, "tau": tau, "share": float((g["ratio"] <= tau).mean())}
        for (fam, opt), g in ratios.groupby(["family", "optimizer"], sort=False)
        for tau in taus
    ]
    return pd.DataFrame(rows)


def plot_profile(ratios: pd.DataFrame, path: Path) -> None:
    taus = np.linspace(1.0, 4.0, 301)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (family, g) in zip(axes, ratios.groupby("family", sort=False), strict=False):
        for opt, share in performance_profile(g, taus).groupby("optimizer", sort=False):
            ax.step(share["tau"], share["share"], where="post", label=opt)
        n = g["task"].nunique()
        ax.set(xlabel="τ (median steps to T / the family's fewest)", title=f"{family}, {n} tasks")
        ax.legend(fontsize=8)
    axes[0].set(ylabel="share of tasks", ylim=(0, 1.02))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def chosen_curves(archive: Path, table: pd.DataFrame) -> dict[tuple[str, float], pd.Series]:
    """One task's seed-mean curve (loss at the deployed weights) of each optimizer at its
    chosen rate, over the evaluation runs at that rate (others, such as the baseline at the
    task's own rate, left out)."""
    picks = {(r.task, r.optimizer, r.rate) for r in table.itertuples()}
    runs: dict[tuple[str, float], list[pd.Series]] = {}
    for record in read_archive(archive):
        label, _, _ = record.key.optimizer.rpartition("_lr")
        family = str(record.config["optimizer"]["family"])
        rate = float(record.config["task"][family]["lr"])
        if (record.key.task, label, rate) in picks:
            runs.setdefault((label, rate), []).append(record.steps.set_index("step")["loss_base"])
    return {key: seed_mean(curves) for key, curves in runs.items()}


def plot_curves(curves: dict[tuple[str, float], pd.Series], table: pd.DataFrame, out: Path) -> None:
    """One task's seed-mean curves at the chosen rates, smoothed over its window, with T."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, family in zip(axes, FAMILIES, strict=True):
        rows = table[table["family"] == family]
        for r in rows.itertuples():
            if (r.optimizer, r.rate) in curves:
                smooth = trailing_mean(curves[(r.optimizer, r.rate)].to_numpy(), r.window)
                ax.plot(
                    np.arange(len(smooth)) + r.window,
                    smooth,
                    lw=1,
                    label=f"{r.optimizer} {r.rate:g}",
                )
        if len(rows):
            ax.axhline(rows["threshold"].iloc[0], color="grey", ls="--", lw=0.8, label="T")
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        else:  # the tuned table has no row of the family: its baseline has no rate
            ax.text(0.5, 0.5, "no tuned baseline", ha="center", transform=ax.transAxes)
        ax.set(xlabel="step", ylabel="loss at deployed weights (seed mean)", title=family)
    task = str(table["task"].iloc[0])
    fig.suptitle(f"{task}: chosen rates, evaluation seeds")
    fig.tight_layout()
    fig.savefig(out / f"loss_curves_{task}.png", dpi=120)
    plt.close(fig)


def markdown(table: pd.DataFrame, means: pd.DataFrame, ratios: pd.DataFrame) -> str:
    parts = [
        "Each optimizer at its tuned rate against its family's tuned baseline (CM, AdamW) on the "
        "evaluation seeds: the per-seed paired saving in real steps to T, mean ± 95 % CI, from "
        "each task's tuned table. A verdict other than *saves* is named (protocol v2: *loses* "
        "where fewer seeds reach T, or the saving is below 0 at p < 0.05)."
    ]
    for family in FAMILIES:
        parts += [f"\n## {family}\n", family_table(table, family).to_markdown(index=False)]
    shown = means.assign(
        saving=[
            "–" if r.n_tasks == 0 else f"{100 * r.saving_mean:.1f} ± {100 * r.saving_ci95:.1f} %"
            for r in means.itertuples()
        ],
        paper=["–" if math.isnan(v) else f"{100 * v:.1f} %" for v in means["paper_7_task_mean"]],
    )
    columns = ["family", "optimizer", "n_tasks", "saving", "p_value", "saves", "loses", "paper"]
    parts += ["\n## Mean over tasks (95 % CI across tasks)\n"]
    parts += [shown[columns].to_markdown(index=False, floatfmt=".2g")]
    profile = performance_profile(ratios, np.array(TAUS)).pivot_table(
        index=["family", "optimizer"], columns="tau", values="share", sort=False
    )
    parts += ["\n## Performance profile (share of tasks within τ × the fastest)\n"]
    parts += [profile.reset_index().to_markdown(index=False, floatfmt=".2f")]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="task folders (tuning/ inside)")
    parser.add_argument("--tasks", help="comma-separated tasks, in the tables' order (all)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (folder / "tuning" / "tuned_table.csv").is_file():
            parser.exit(2, f"{parser.prog}: error: no tuning/tuned_table.csv in {folder}\n")
    try:
        table, sources = read_tables(args.folders, args.tasks.split(",") if args.tasks else None)
        for folder in sources.values():
            evaluation_archive(folder)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    means, ratios = mean_over_tasks(table), profile_ratios(table)
    table.to_csv(args.out / "cross_task.csv", index=False)
    means.to_csv(args.out / "mean_over_tasks.csv", index=False)
    performance_profile(ratios, np.array(TAUS)).to_csv(
        args.out / "performance_profile.csv", index=False
    )
    (args.out / "cross_task.md").write_text(markdown(table, means, ratios))
    plot_profile(ratios, args.out / "performance_profile.png")
    for task, rows in table.groupby("task", observed=True):
        curves = chosen_curves(evaluation_archive(sources[str(task)]), rows)
        plot_curves(curves, rows, args.out)
    print(f"cross-task tables: {args.out / 'cross_task.md'}")


if __name__ == "__main__":
    main()
