"""Turn runs into the paper's comparison: steps to threshold, tables, plots.

    python scripts/report.py SOURCE [SOURCE ...] [--out DIR] [--fractions 0.5,0.75,0.9,0.95,0.99]
                             [--smoothing 400] [--baselines sgd=sgd_momentum,adam=adamw]
                             [--mixed-time]

SOURCE is a results folder (``results/<experiment>``) or an archive of runs
(``results/<experiment>/archive``, trainers/archive.py); several are merged, each run counted
once, and the same run with other curves or settings is refused in one line.
Writes into ``--out`` (default ``<first source>/report``): ``steps_to_threshold.csv`` (all
tasks; with seconds per step and time to threshold from the same runs) and per task
``<task>/steps_to_threshold.csv``, ``<task>/loss_curves.png``, ``<task>/savings.png``;
``table1.{md,tex,csv}``; ``mean_over_tasks.{csv,md}`` (each optimizer's saving at 0.95 averaged
over the tasks, the paper's way and per seed); ``performance_profile.png``; ``missing.txt``; and
a TensorBoard run in ``lightning_logs/compare/`` (``--tensorboard``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from scripts.collect import Runs, load_runs
from scripts.threshold import (
    DEFAULT_BASELINES,
    WINDOW,
    ci95,
    mean_over_tasks,
    one_sample_p,
    seed_mean,
    steps_summary,
    steps_to_threshold,
    trailing_mean,
)
from trainers.archive import MergeError, is_archive
from trainers.results import Status

# Table 1 compares against the better of these per family (paper: CM/NAG and Adam/NAdam).
COMPARATORS = {"sgd": ["sgd_momentum", "sgd_nesterov"], "adam": ["adamw", "adam", "nadam"]}


def column_order(index: pd.DataFrame) -> list[str]:
    """Family by family, baselines first, then the rest alphabetically (sgdo_g3 < sgdo_g5 ...)."""
    out = []
    families = list(COMPARATORS)
    for family in sorted(
        index["family"].unique(),
        key=lambda f: (f not in families, families.index(f) if f in families else 0, f),
    ):
        names = set(index.loc[index["family"] == family, "optimizer"])
        first = [n for n in COMPARATORS.get(family, []) if n in names]
        out += first + sorted(names - set(first))
    return out


def table1(runs: Runs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long numbers, display table): final test metric at base weights, mean ± 95 % CI."""
    rows, display = [], {}
    order = column_order(runs.index)
    for task, df in runs.index.groupby("task"):
        metric = "test_accuracy" if df["test_accuracy"].notna().any() else "test_loss"
        higher = metric == "test_accuracy"
        per_opt = {o: g.set_index("seed")[metric].dropna() for o, g in df.groupby("optimizer")}
        means = {o: v.mean() for o, v in per_opt.items() if len(v)}
        best = max(means, key=lambda o: means[o] if higher else -means[o]) if means else None
        cells = {}
        for opt, values in per_opt.items():
            family = df.loc[df["optimizer"] == opt, "family"].iloc[0]
            comps = [c for c in COMPARATORS.get(family, []) if c in means and c != opt]
            p_value = math.nan
            if comps and opt not in COMPARATORS.get(family, []):
                ref = max(comps, key=lambda c: means[c] if higher else -means[c])
                paired = pd.concat([values, per_opt[ref]], axis=1, join="inner").to_numpy()
                p_value = one_sample_p(paired[:, 0] - paired[:, 1])
            mean, half = values.mean(), ci95(values.to_numpy())
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "optimizer": opt,
                    "mean": mean,
                    "ci95": half,
                    "n_seeds": len(values),
                    "p_value_vs_better_baseline": p_value,
                }
            )
            text = f"{mean:.4g} ± {half:.2g}" if not math.isnan(half) else f"{mean:.4g}"
            text += "*" if p_value < 0.05 else ""
            cells[opt] = f"**{text}**" if opt == best else text
        display[f"{task} ({metric.removeprefix('test_')})"] = cells
    shown = pd.DataFrame(display).T.reindex(columns=order).fillna("–")
    return pd.DataFrame(rows), shown


def add_wall_clock(table: pd.DataFrame, runs: Runs, mixed_time: bool = False) -> pd.DataFrame:
    """Seconds per training step and time to threshold.

    ``s_per_step`` is the median over finished seeds of each run's median step time (the step's
    forward, backward and update alone; ``s_per_step_iqr`` its spread), ``compile_time_s`` the
    time spent in ``torch.compile``, reported beside it, never inside. ``time_to_threshold_s`` =
    steps × ``s_per_step``. ``step_time_ratio`` is paired by seed, as the savings are: the median
    over seeds of a run's step time over the baseline run's with the same seed (a multirun runs
    them close in time, so a shared machine's drift cancels); ``time_savings`` = 1 − steps /
    baseline steps × ``step_time_ratio``. Both compare an optimizer with its baseline only where
    both ran alike (kernels, device, CPU threads, members or not, and how the time was
    measured); ``mixed_time`` compares them anyway. ``time_note`` says which.
    """
    done = runs.index[runs.index["status"] == Status.FINISHED]
    how = done["compute"] + "; " + done["time_basis"]
    groups = done.assign(how=how).groupby(["task", "optimizer"])
    per_step = groups.agg(
        s_per_step=("step_time_s", "median"),
        s_per_step_iqr=("step_time_iqr_s", "median"),
        compile_time_s=("compile_time_s", "mean"),
        ran=("how", lambda h: " | ".join(sorted(set(h)))),
    )
    out = table.merge(per_step.reset_index(), on=["task", "optimizer"], how="left")
    out["time_to_threshold_s"] = out["steps"] * out["s_per_step"]
    out_steps = out.set_index(["task", "optimizer", "fraction"])["steps"]
    ratios, savings, notes = [], [], []
    for row in out.itertuples():
        key = (row.task, row.baseline)
        ours, theirs = row.ran, per_step["ran"].get(key, "")
        note = ""
        if isinstance(ours, str) and theirs and (ours != theirs or " | " in ours):
            note = f"{row.optimizer} ran {ours}; {row.baseline} ran {theirs}"
        elif isinstance(ours, str) and "old:" in ours:
            note = "old definition: training wall time / steps"
        comparable = not note.startswith(f"{row.optimizer} ran") or mixed_time
        ratio = paired_ratio(done, row.task, row.optimizer, row.baseline, comparable)
        base_steps = out_steps.get((row.task, row.baseline, row.fraction), math.nan)
        ratios.append(ratio)
        savings.append(1 - row.steps / base_steps * ratio)
        if note.startswith(f"{row.optimizer} ran"):
            note = ("mixed: " if mixed_time else "not compared (--mixed-time): ") + note
        notes.append(note)
    out["step_time_ratio"], out["time_savings"], out["time_note"] = ratios, savings, notes
    return out.drop(columns="ran")


def seed_ratios(done: pd.DataFrame, task: str, opt: str, baseline: str) -> pd.Series:
    """Per seed both ran, ``opt``'s step time over ``baseline``'s."""
    times = done[done["task"] == task].pivot_table(
        index="seed", columns="optimizer", values="step_time_s"
    )
    if opt not in times or baseline not in times:
        return pd.Series(dtype="float64")
    return (times[opt] / times[baseline]).dropna()


def paired_ratio(done: pd.DataFrame, task: str, opt: str, baseline: str, compare: bool) -> float:
    """Median over the seeds both ran of ``opt``'s step time over ``baseline``'s."""
    if not compare or not baseline:
        return math.nan
    per_seed = seed_ratios(done, task, opt, baseline)
    return float(per_seed.median()) if len(per_seed) else math.nan


def time_intervals(runs: Runs, table: pd.DataFrame, fraction: float) -> list[str]:
    """Each compared step-time ratio with its 95 % interval across seeds (a t interval on the
    per-seed log ratios), and whether it can be told from 1.00: one multirun's step times drift
    by tens of percent on a shared machine, so a ratio alone says little."""
    done = runs.index[runs.index["status"] == Status.FINISHED]
    at = table[np.isclose(table["fraction"], fraction) & np.isfinite(table["step_time_ratio"])]
    lines = []
    for row in at[at["optimizer"] != at["baseline"]].itertuples():
        logs = np.log(seed_ratios(done, row.task, row.optimizer, row.baseline).to_numpy())
        ratio = f"{row.optimizer} / {row.baseline} step time {row.step_time_ratio:.2f}"
        what = f"  time, {row.task}: {ratio}"
        if len(logs) < 2:
            lines.append(f"{what} (one seed pair: no interval, cannot be told from 1.00)")
            continue
        low, high = np.exp(logs.mean() + np.array([-1, 1]) * ci95(logs))
        told = "" if low > 1 or high < 1 else ", cannot be told from 1.00"
        lines.append(f"{what} (95 % interval {low:.2f}–{high:.2f}, {len(logs)} seeds{told})")
    return lines


def plot_curves(runs: Runs, table: pd.DataFrame, task: str, window: int, path: Path) -> None:
    """Two rows of one panel per family: the seed-mean curve smoothed as the metric smooths it,
    the threshold and each optimizer's crossing; diverged seeds are counted, not drawn. The top
    row spans every curve's start and the 99th percentile of the finite values (a spike that a
    finished seed recovered from runs off the panel, not the scale); the bottom row zooms on T
    and the crossings, where curves that overlap at full scale part."""
    index = runs.index[runs.index["task"] == task]
    families = [f for f in COMPARATORS if f in set(index["family"])]
    families += sorted(set(index["family"]) - set(families))
    fig, axes = plt.subplots(2, len(families), figsize=(6.5 * len(families), 8.5), squeeze=False)
    at = table[np.isclose(table["fraction"], 0.95)].set_index("optimizer")
    for column, family in enumerate(families):
        full, zoom = axes[0][column], axes[1][column]
        fam = index[index["family"] == family]
        curves = {}
        for ax in (full, zoom):
            ax.set_prop_cycle(color=[plt.get_cmap("tab10")(i) for i in range(10)])
        for opt in column_order(fam):
            runs_of = fam[fam["optimizer"] == opt]
            done = runs_of[runs_of["status"] == Status.FINISHED]
            label = f"{opt} (n={len(done)}"
            label += f", {len(runs_of) - len(done)} diverged)" if len(done) < len(runs_of) else ")"
            if done.empty:
                for ax in (full, zoom):
                    ax.plot([], [], label=label)
                continue
            curve = seed_mean(runs.curves[(task, opt, int(s))] for s in done["seed"])
            smoothed = trailing_mean(curve.to_numpy(), window)
            steps = curve.index.to_numpy()[window - 1 : window - 1 + len(smoothed)]
            curves[opt] = (steps, smoothed)
            crossing = at.loc[opt, "steps"] if opt in at.index else math.nan
            for ax in (full, zoom):
                (line,) = ax.plot(steps, smoothed, label=label, lw=1.2)
                if not math.isnan(crossing):
                    ax.axvline(crossing, color=line.get_color(), lw=0.8, ls=":")
        threshold = math.nan
        if fam["optimizer"].isin(at.index).any():
            threshold = at.loc[at.index.isin(fam["optimizer"]), "threshold"].iloc[0]
            if not math.isnan(threshold):
                for ax in (full, zoom):
                    ax.axhline(threshold, color="black", lw=0.8, ls="--", label="T (f = 0.95)")
        full_scale(full, curves, threshold)
        zoom_on_threshold(zoom, curves, at, threshold)
        full.set_title(f"{task}: {family} family")
        zoom.set_title("zoomed on T and the crossings")
        for ax in (full, zoom):
            ax.set(xlabel="step", ylabel=f"train loss at deployed weights, mean of {window}")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def full_scale(ax: Any, curves: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float) -> None:
    """Every curve's start to the 99th percentile of its finite values (log if they span 10×)."""
    finite = [v for _, c in curves.values() for v in c[np.isfinite(c)].tolist()]
    starts = [float(c[np.isfinite(c)][0]) for _, c in curves.values() if np.isfinite(c).any()]
    if not math.isnan(threshold):
        finite.append(threshold)
    if not finite:
        return
    low, high = min(finite), max([*starts, float(np.percentile(finite, 99))])
    if low > 0 and high / low > 10:
        ax.set_yscale("log")
        ax.set_ylim(low / 1.2, high * 1.2)
    else:
        pad = 0.05 * (high - low or abs(high) or 1.0)
        ax.set_ylim(low - pad, high + pad)


def zoom_on_threshold(
    ax: Any,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    at: pd.DataFrame,
    threshold: float,
) -> None:
    """Steps from a fifth before the first crossing to a fifth after the last (or the end), and
    the losses the curves take there, T inside."""
    crossings = [at.loc[o, "steps"] for o in curves if o in at.index]
    crossings = [c for c in crossings if not math.isnan(c)]
    if math.isnan(threshold) or not crossings:
        return
    end = max(float(s[-1]) for s, _ in curves.values())
    first, last = min(crossings), max(crossings)
    span = max(last - first, 0.05 * end)
    left, right = max(0.0, first - span / 5), min(end, last + span / 5)
    inside = [c[(s >= left) & (s <= right) & np.isfinite(c)] for s, c in curves.values()]
    values = [v for part in inside for v in part.tolist()] + [threshold]
    low, high = min(values), max(values)
    pad = 0.05 * (high - low or abs(high) or 1.0)
    ax.set_xlim(left, right)
    ax.set_ylim(low - pad, high + pad)


def plot_savings(table: pd.DataFrame, task: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for opt, g in table[table["optimizer"] != table["baseline"]].groupby("optimizer"):
        g = g.sort_values("fraction")
        ax.errorbar(
            g["fraction"],
            100 * g["savings_seed_mean"],
            yerr=100 * g["savings_ci95"],
            marker="o",
            capsize=3,
            label=opt,
        )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="loss-reduction fraction f", ylabel="steps saved vs baseline (%)", title=task)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_profile(table: pd.DataFrame, fraction: float, path: Path) -> str:
    """Dolan–Moré profile: share of tasks an optimizer reaches T within τ × the best steps.
    Returns why it was not drawn, where no optimizer reached T on any task (none is written)."""
    at = table[np.isclose(table["fraction"], fraction)]
    ratios = at.pivot_table(index="task", columns="optimizer", values="steps")
    if ratios.empty:
        path.unlink(missing_ok=True)
        reasons = sorted(set(at["no_threshold"]) - {""})
        why = "; ".join(reasons) or "no optimizer reached T"
        return f"performance profile not drawn: no task has a crossing of T ({why})"
    ratios = ratios.div(ratios.min(axis=1), axis=0).fillna(np.inf)
    taus = np.linspace(1, max(2.0, float(np.nanmax(ratios.replace(np.inf, np.nan)) or 2)), 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    for opt in ratios.columns:
        ax.step(taus, [(ratios[opt] <= t).mean() for t in taus], where="post", label=opt)
    ax.set(xlabel="τ (steps / best steps)", ylabel="share of tasks", ylim=(0, 1.02))
    ax.set_title(f"performance profile, steps to {fraction:g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return ""


def write_tensorboard(table: pd.DataFrame, markdown: str, logdir: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    for opt, g in table.groupby("optimizer"):
        with SummaryWriter(str(logdir / str(opt))) as writer:
            for row in g.itertuples():
                if not math.isnan(row.steps):
                    writer.add_scalar(f"compare/{row.task}/steps_to_{row.fraction:g}", row.steps, 0)
    with SummaryWriter(str(logdir / "tables")) as writer:
        writer.add_text("compare/table1", markdown, 0)


def write_task_mean(means: pd.DataFrame, out: Path) -> None:
    means.to_csv(out / "mean_over_tasks.csv", index=False)

    def percent(v: float) -> str:
        return "–" if math.isnan(v) else f"{100 * v:.1f} %"

    shown = pd.DataFrame(
        {
            "paper's way": [percent(v) for v in means["savings"]],
            "per seed": [percent(v) for v in means["savings_seed_mean"]],
            "tasks": [f"{r.n_tasks}: {r.tasks}".rstrip() for r in means.itertuples()],
            "left out": means["tasks_left_out"].tolist(),
        },
        index=means["optimizer"],
    )
    (out / "mean_over_tasks.md").write_text(
        shown.to_markdown()
        + "\n\nSteps saved against the family's baseline, plain mean over the tasks listed: "
        "the paper's way (each task's seed-mean curve) and per seed (each task's mean of paired "
        "per-seed savings). Tasks where an optimizer never reached the threshold are left out.\n"
    )


class NoRunsError(ValueError):
    """The results folder holds no run that ended: nothing to compare."""


def report(
    results: Path | list[Path],
    out: Path,
    fractions: list[float],
    window: int,
    baselines: dict[str, str] = DEFAULT_BASELINES,
    tensorboard: Path | None = None,
    mixed_time: bool = False,
) -> pd.DataFrame:
    sources = results if isinstance(results, list) else [results]
    runs = load_runs(*sources)
    if runs.index.empty:
        raise NoRunsError(f"no finished runs under {', '.join(map(str, sources))}")
    out.mkdir(parents=True, exist_ok=True)
    tables = []
    for task in sorted(runs.index["task"].unique()):
        table = steps_to_threshold(runs, task, fractions, window, baselines)
        table = add_wall_clock(table, runs, mixed_time)
        (out / task).mkdir(exist_ok=True)
        table.to_csv(out / task / "steps_to_threshold.csv", index=False)
        plot_curves(runs, table, task, window, out / task / "loss_curves.png")
        plot_savings(table, task, out / task / "savings.png")
        tables.append(table)
    all_steps = pd.concat(tables, ignore_index=True)
    all_steps.to_csv(out / "steps_to_threshold.csv", index=False)
    numbers, shown = table1(runs)
    numbers.to_csv(out / "table1.csv", index=False)
    markdown = shown.to_markdown()
    (out / "table1.md").write_text(
        markdown + "\n\nFinal test metric at base weights, mean ± 95 % CI over seeds; * paired "
        "t-test vs the better baseline p < 0.05; best in bold.\n"
    )
    (out / "table1.tex").write_text(shown.to_latex())
    headline = 0.95 if 0.95 in fractions else fractions[-1]
    write_task_mean(mean_over_tasks(all_steps, headline), out)
    not_drawn = plot_profile(all_steps, headline, out / "performance_profile.png")
    for line in [*time_intervals(runs, all_steps, headline), not_drawn]:
        if line:
            print(line)
    (out / "missing.txt").write_text("".join(f"{p}\n" for p in runs.problems))
    if tensorboard is not None:
        write_tensorboard(all_steps, markdown, tensorboard)
    return all_steps


def parse_baselines(text: str) -> dict[str, str]:
    pairs = [item.partition("=") for item in text.split(",") if item]
    if any(not sep for _, sep, _ in pairs):
        raise argparse.ArgumentTypeError(f"expected family=optimizer,... got {text!r}")
    return {family: opt for family, _, opt in pairs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.splitlines()[0])
    parser.add_argument(
        "results", type=Path, nargs="+", help="results folders and archives, merged"
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--fractions",
        default="0.5,0.75,0.9,0.95,0.99",
        type=lambda s: [float(x) for x in s.split(",")],
    )
    parser.add_argument(
        "--smoothing", type=int, default=WINDOW, help="trailing mean over full windows, steps"
    )
    parser.add_argument(
        "--baselines",
        type=parse_baselines,
        default=DEFAULT_BASELINES,
        help="family=optimizer,... (default sgd=sgd_momentum,adam=adamw)",
    )
    parser.add_argument(
        "--tensorboard", default="lightning_logs/compare", help="TensorBoard dir; '' to skip"
    )
    parser.add_argument(
        "--mixed-time",
        action="store_true",
        help="compare step times of runs on other kernels, devices or thread counts (marked)",
    )
    args = parser.parse_args(argv)
    for source in args.results:
        if not source.is_dir():
            parser.exit(2, f"{parser.prog}: error: results folder {source} does not exist\n")
    first = args.results[0]
    out = args.out or (first.parent if is_archive(first) else first) / "report"
    try:
        table = report(
            args.results,
            out,
            args.fractions,
            args.smoothing,
            args.baselines,
            Path(args.tensorboard) if args.tensorboard else None,
            args.mixed_time,
        )
    except (NoRunsError, MergeError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    print(steps_summary(table))
    notes = table.loc[table["time_note"].str.contains(" ran "), ["task", "time_note"]]
    for task, note in notes.drop_duplicates().itertuples(index=False):
        print(f"  time, {task}: {note}")
    missing = (out / "missing.txt").read_text()
    if missing:
        print(f"left out (see {out / 'missing.txt'}):\n{missing}", end="")
    print(f"report: {out}")


if __name__ == "__main__":
    main()
