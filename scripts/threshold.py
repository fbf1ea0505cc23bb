"""The paper's metric: steps to reach a fraction of the baseline's loss reduction.

Computed as the reference's ``paper_scripts/convergance_speed.ipynb`` (arXiv v1, commit b3ebff9)
computed the paper's numbers, per task and family:

1. ``v``: the seed-mean of the per-step training loss at the deployed weights (finished runs);
2. ``a[k] = mean(v[k : k + w])`` for ``k = 0 … len(v) − w − 1`` — trailing means over full
   ``w``-step windows only (the notebook's ``range(w, len(v))``, which leaves the last window
   out), so ``a[0]`` is the mean of the first ``w`` steps;
3. ``T = a_b[0] − f · (a_b[0] − a_b[−1])`` on the baseline's ``a_b``;
4. ``index`` = the first ``k`` with ``a[k] ≤ T``; saving = (index_b − index) / index_b.

``steps = index + w`` is the same crossing in real training steps (the last step of the
window), used for time to threshold and in ``savings_real_steps``. The spread comes from one
paired statistic: each seed's own crossing of the same ``T``, its saving against the baseline
run with the same seed, and a one-sample t interval and test on those savings, so the interval
excludes 0 exactly when p < 0.05. A curve that never reaches ``T`` is censored, never a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from scripts.collect import Runs
from trainers.results import Status

DEFAULT_BASELINES = {"sgd": "sgd_momentum", "adam": "adamw"}
WINDOW = 400
TASK_MEAN_COLUMNS = [
    "family",
    "optimizer",
    "fraction",
    "savings",
    "savings_seed_mean",
    "n_tasks",
    "tasks",
    "tasks_left_out",
]


def trailing_mean(curve: np.ndarray, window: int) -> np.ndarray:
    """``a[k] = mean(curve[k : k + window])`` over full windows, the last one left out."""
    curve = np.asarray(curve, dtype=np.float64)
    if len(curve) <= window:
        return np.empty(0)
    windows = np.lib.stride_tricks.sliding_window_view(curve, window)[:-1]
    return windows.mean(axis=1)


def seed_mean(curves: Iterable[pd.Series]) -> pd.Series:
    """Mean over seeds, step by step, over the steps every curve has."""
    table = pd.concat(list(curves), axis=1, join="inner")
    return table.mean(axis=1)


def first_index(smoothed: np.ndarray, threshold: float) -> float:
    """First index with value ≤ threshold; NaN when never reached (censored)."""
    hit = np.flatnonzero(smoothed <= threshold)
    return float(hit[0]) if len(hit) else math.nan


def saving(base_index: float, index: float) -> float:
    """(index_b − index) / index_b; undefined (NaN) when either is censored or index_b = 0."""
    if math.isnan(base_index) or math.isnan(index) or base_index == 0:
        return math.nan
    return (base_index - index) / base_index


def ci95(values: np.ndarray) -> float:
    n = len(values)
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))


def one_sample_p(values: np.ndarray) -> float:
    """Two-sided t-test of mean 0: the same statistic as ``ci95``'s interval.

    All zero: no evidence (p = 1); constant and non-zero: certain (p = 0).
    """
    if len(values) < 2:
        return math.nan
    if np.all(values == values[0]):
        return 1.0 if values[0] == 0 else 0.0
    return float(stats.ttest_1samp(values, 0.0).pvalue)


def steps_to_threshold(
    runs: Runs,
    task: str,
    fractions: list[float],
    window: int = WINDOW,
    baselines: dict[str, str] = DEFAULT_BASELINES,
    targets: dict[str, list[float]] | None = None,
) -> pd.DataFrame:
    """One row per (family, optimizer, fraction) of ``task``. ``targets`` gives a family's T
    per fraction from elsewhere (a tuned comparison's T comes from the baseline at the task's own
    rate, not from the tuned baseline it pairs with); by default T is the baseline's."""
    index = runs.index[runs.index["task"] == task]
    rows = []
    for family, fam in index.groupby("family"):
        named = baselines.get(str(family))
        baseline = named if named in set(fam["optimizer"]) else None
        rated = bool(named) and fam["optimizer"].str.startswith(f"{named}_lr").any()
        seeds = {
            opt: {
                int(s): trailing_mean(runs.curves[(task, opt, int(s))].to_numpy(), window)
                for s in g["seed"]
            }
            for opt, g in fam.groupby("optimizer")
        }
        means = {
            opt: trailing_mean(
                seed_mean(runs.curves[(task, opt, int(s))] for s in g["seed"]).to_numpy(), window
            )
            for opt, g in fam[fam["status"] == Status.FINISHED].groupby("optimizer")
        }
        ref = means.get(baseline, np.empty(0)) if baseline else np.empty(0)
        why_not = no_threshold(baseline, baseline in means, window, rated) if not len(ref) else ""
        given = (targets or {}).get(str(family))
        for k, fraction in enumerate(fractions):
            threshold = ref[0] - fraction * (ref[0] - ref[-1]) if len(ref) else math.nan
            if given is not None:
                threshold = given[k]
            base_index = first_index(ref, threshold)
            base_seeds = {
                s: first_index(a, threshold) for s, a in seeds.get(baseline or "", {}).items()
            }
            for opt in sorted(seeds):
                at = first_index(means.get(opt, np.empty(0)), threshold)
                per_seed = {s: first_index(a, threshold) for s, a in seeds[opt].items()}
                pairs = [saving(base_seeds[s], i) for s, i in per_seed.items() if s in base_seeds]
                paired = np.array([v for v in pairs if not math.isnan(v)])
                compared = opt != baseline and len(paired) > 0
                rows.append(
                    {
                        "task": task,
                        "family": family,
                        "optimizer": opt,
                        "baseline": baseline or "",
                        "fraction": fraction,
                        "window": window,
                        "threshold": threshold,
                        "no_threshold": why_not,
                        "index": at,
                        "steps": at + window,
                        "savings": saving(base_index, at),
                        "savings_real_steps": saving(base_index + window, at + window),
                        "savings_seed_mean": paired.mean() if len(paired) else math.nan,
                        "savings_ci95": ci95(paired),
                        "p_value": one_sample_p(paired) if compared else math.nan,
                        "n_seeds": len(per_seed),
                        "n_paired": len(paired),
                        "n_censored": n_censored(per_seed, threshold),
                        "per_seed": per_seed_text(per_seed, threshold),
                    }
                )
    return pd.DataFrame(rows)


def mean_over_tasks(table: pd.DataFrame, fraction: float = 0.95) -> pd.DataFrame:
    """Per optimizer, the plain mean over tasks of its saving at ``fraction``: the paper's
    average (its per-task seed-mean-curve savings, as convergance_speed.ipynb averaged them)
    and ours (the per-task mean of per-seed paired savings). A task where the optimizer never
    reached ``T`` or had no baseline leaves that mean, and is counted apart."""
    at = table[np.isclose(table["fraction"], fraction) & (table["optimizer"] != table["baseline"])]
    at = at[at["baseline"] != ""]
    rows = []
    for (family, opt), g in at.groupby(["family", "optimizer"]):
        paper, ours = g.dropna(subset=["savings"]), g.dropna(subset=["savings_seed_mean"])
        rows.append(
            {
                "family": family,
                "optimizer": opt,
                "fraction": fraction,
                "savings": paper["savings"].mean(),
                "savings_seed_mean": ours["savings_seed_mean"].mean(),
                "n_tasks": len(paper),
                "tasks": " ".join(sorted(paper["task"])),
                "tasks_left_out": " ".join(sorted(set(g["task"]) - set(paper["task"]))),
            }
        )
    return pd.DataFrame(rows, columns=TASK_MEAN_COLUMNS)


def n_censored(per_seed: dict[int, float], threshold: float) -> int:
    """Seeds that never reach ``T``; none where there is no ``T`` (``no_threshold`` says why)."""
    return 0 if math.isnan(threshold) else sum(math.isnan(i) for i in per_seed.values())


def per_seed_text(per_seed: dict[int, float], threshold: float) -> str:
    if math.isnan(threshold):
        return " ".join(f"{s}:no threshold" for s in sorted(per_seed))
    return " ".join(
        f"{s}:{'censored' if math.isnan(i) else int(i)}" for s, i in sorted(per_seed.items())
    )


def no_threshold(baseline: str | None, finished: bool, window: int, rated: bool = False) -> str:
    """Why a family has no ``T``: its baseline ran only at rates filed apart (a learning-rate
    grid, whose T scripts/tune.py sets), did not run, no seed of it finished, or its curve is
    not longer than one smoothing window."""
    if not baseline and rated:
        return "no threshold: each rate filed apart (lr_in_label); scripts/tune.py compares them"
    if not baseline:
        return "no threshold: no baseline run"
    if not finished:
        return f"no threshold: no finished {baseline} run"
    return f"no threshold: {baseline} ran no more steps than the {window}-step window"


def steps_summary(table: pd.DataFrame, fraction: float = 0.95) -> str:
    """Console table: the paper's saving (seed-mean curve) and the per-seed paired mean ± 95 %
    CI with its p-value (one statistic, so they agree); censored shown as such."""
    at = table[np.isclose(table["fraction"], fraction)]
    lines = [
        f"steps to {fraction:g} of the baseline's loss reduction, in real steps (paper's "
        "computation; its index counts from the first window's end; per seed: paired mean of "
        "the index savings ± 95 % CI)"
    ]
    for row in at.itertuples():
        if row.no_threshold:
            lines.append(f"  {row.task:18} {row.optimizer:28} {row.no_threshold}  n={row.n_seeds}")
            continue
        steps = "not reached" if math.isnan(row.steps) else f"{row.steps:.0f}"
        saving = ""
        if row.optimizer != row.baseline and not math.isnan(row.savings):
            saving = (
                f"  saves {100 * row.savings_real_steps:.1f} % of the steps"
                f" (paper's index: {100 * row.savings:.1f} %)"
            )
        if row.optimizer != row.baseline and not math.isnan(row.savings_seed_mean):
            saving += f"  per seed (index) {100 * row.savings_seed_mean:.1f}"
            if row.n_paired > 1:
                saving += (
                    f" ± {100 * row.savings_ci95:.1f} % (p={row.p_value:.2g}, n={row.n_paired})"
                )
            else:
                saving += " % (one seed pair: no interval)"
        elif row.optimizer != row.baseline:
            saving += "  per seed: no seed pair has both crossings (censored)"
        lines.append(
            f"  {row.task:18} {row.optimizer:28} {steps:>11}  n={row.n_seeds}"
            f" censored={row.n_censored}{saving}"
        )
    return "\n".join(lines)
