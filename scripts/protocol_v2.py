"""Tuning protocol v2 (issue #40; the rules are results/tuned_v2/README.md's): a window fixed
by the budget, a lost tuning seed scoring infinite, a stability margin, grids that widen an
octave at a time, and a held-out evaluation a fast but fragile optimizer cannot win.

v1's rule kept the fastest rate whose three tuning seeds all reached T; a rate whose outcome
depends on the seed could win that way and fail on the evaluation seeds (MLP-CA, CM at 8×). v2
keeps the choice one octave below any rate that loses a tuning seed, and widens the grid until
the choice lies inside it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scripts.threshold import (
    WINDOW,
    ci95,
    first_index,
    one_sample_p,
    saving,
    seed_mean,
    trailing_mean,
)
from trainers.archive import RunRecord

MAX_OCTAVE = 9  # the search stops at 2^±9 of the task's rate (512×)
RULE_COLUMNS = {"steps": "steps_to_t", "final": "final"}


def budget_window(steps: int) -> int:
    """W = min(400, ⌊B / 100⌋): the paper's window on paper-length budgets, a hundredth of the
    budget on short ones, so T lies many windows in wherever it lies in the budget."""
    return max(1, min(WINDOW, steps // 100))


def task_windows(records: list[RunRecord]) -> dict[str, int]:
    """Each task's W from its budget B: its longest curve (a diverged run's is shorter)."""
    budgets: dict[str, int] = {}
    for r in records:
        budgets[r.key.task] = max(budgets.get(r.key.task, 0), len(r.steps))
    return {task: budget_window(steps) for task, steps in budgets.items()}


def octave(rate: float, task_rate: float) -> int:
    """k in rate = 2^k × the task's rate."""
    return round(math.log2(rate / task_rate))


def rate_scores(grid: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer and rate: the seed-mean score of each rule (∞ where any seed is lost),
    the seeds, and how many were lost (diverged, or never reached T)."""
    scores = grid.groupby(["task", "family", "optimizer", "rate", "task_rate"], as_index=False).agg(
        steps_to_t=("steps_to_t", "mean"),
        final=("final", "mean"),
        seeds=("seed", "nunique"),
        lost=("steps_to_t", lambda s: int(np.isinf(s).sum())),
    )
    scores["feasible"] = scores["lost"] == 0
    scores["octave"] = [octave(r.rate, r.task_rate) for r in scores.itertuples()]
    return scores


def choose_one(g: pd.DataFrame) -> list[dict[str, Any]]:
    """One optimizer's choice under each rule (README step 4), the side its grid widens to
    (step 5) and, where the fastest feasible rate was passed over, why."""
    by_octave = g.set_index("octave")
    lowest, highest = int(by_octave.index.min()), int(by_octave.index.max())
    feasible = g[g["feasible"]]
    above_ok = [
        k + 1 in by_octave.index and by_octave.at[k + 1, "feasible"] for k in feasible["octave"]
    ]
    admissible = feasible[above_ok]
    picks = {
        rule: admissible.sort_values([column, "rate"]).iloc[0] if len(admissible) else None
        for rule, column in RULE_COLUMNS.items()
    }
    best = feasible.sort_values(["steps_to_t", "rate"]).iloc[0] if len(feasible) else None
    choice = picks["steps"]
    widen = ""
    if best is not None and best["octave"] == highest:
        widen = "up"
    elif best is None or choice is None or lowest in (best["octave"], choice["octave"]):
        widen = "down"
    stopped = widen and (highest if widen == "up" else -lowest) >= MAX_OCTAVE
    note = []
    if best is not None and (choice is None or best["rate"] != choice["rate"]):
        up = by_octave.loc[best["octave"] + 1] if best["octave"] < highest else None
        why = "not run yet" if up is None else f"lost {up['lost']} of {up['seeds']} seeds"
        note.append(f"fastest feasible {scale(best):g}x, but {2 * scale(best):g}x {why} (margin)")
    if stopped:
        note.append(f"search stopped at 2^{'+' if widen == 'up' else '-'}{MAX_OCTAVE}")
    return [
        {
            "task": g["task"].iloc[0],
            "family": g["family"].iloc[0],
            "optimizer": g["optimizer"].iloc[0],
            "rule": rule,
            "rate": math.nan if pick is None else pick["rate"],
            "scale": math.nan if pick is None else scale(pick),
            "score": math.nan if pick is None else pick[RULE_COLUMNS[rule]],
            "seeds": int(g["seeds"].max()),
            "octaves": f"{lowest}..{highest}",
            "infeasible_octaves": " ".join(str(k) for k in g.loc[~g["feasible"], "octave"]),
            "widen": "" if stopped else widen,
            "note": "; ".join(note) if rule == "steps" else "",
        }
        for rule, pick in picks.items()
    ]


def scale(row: pd.Series) -> float:
    """A rate as a multiple of the task's."""
    return float(row["rate"] / row["task_rate"])


def choose(grid: pd.DataFrame) -> pd.DataFrame:
    """Every optimizer's admissible choice under each rule (results/tuned_v2/README.md, 4-5)."""
    scores = rate_scores(grid)
    rows = []
    for _, g in scores.groupby(["task", "family", "optimizer"]):
        rows.extend(choose_one(g))
    return pd.DataFrame(rows)


def widen_commands(grid: pd.DataFrame, chosen: pd.DataFrame, experiment: str) -> list[str]:
    """The next octave of every optimizer whose grid must widen, as main.py multiruns on the
    tuning seeds (one vectorized job each), filed under ``experiment``."""
    how = grid.drop_duplicates(["task", "optimizer"]).set_index(["task", "optimizer"])
    commands = []
    for row in chosen[(chosen["rule"] == "steps") & (chosen["widen"] != "")].itertuples():
        run = how.loc[(row.task, row.optimizer)]
        low, high = (int(k) for k in row.octaves.split(".."))
        k = high + 1 if row.widen == "up" else low - 1
        gamma = f" optimizer.overshoot={float(run.overshoot):g}" if pd.notna(run.overshoot) else ""
        commands.append(
            f"python main.py -m experiment=tuned experiment_name={experiment} task={row.task} "
            f"hparams={run.hparams} optimizer={run['name']}{gamma} "
            f"'members.lr_scale=[{2.0**k:g}]' vectorize=true"
        )
    return commands


def seed_steps(
    curves: dict[int, tuple[np.ndarray, bool]], threshold: float, window: int
) -> dict[int, float]:
    """Each seed's real steps to T (index + W); ∞ where it diverged or never reached T."""
    out = {}
    for seed, (curve, finished) in curves.items():
        at = first_index(trailing_mean(curve, window), threshold)
        out[seed] = at + window if finished and not math.isnan(at) else math.inf
    return out


def curve_index(curves: dict[int, tuple[np.ndarray, bool]], threshold: float, window: int) -> float:
    """The paper's way: the index at which the finished seeds' mean curve crosses T."""
    done = [pd.Series(c) for c, finished in curves.values() if finished]
    if not done:
        return math.nan
    return first_index(trailing_mean(seed_mean(done).to_numpy(), window), threshold)


def real_saving(base: float, steps: float) -> float:
    """1 − steps / base; undefined where either never arrives."""
    return 1 - steps / base if math.isfinite(base) and math.isfinite(steps) else math.nan


def evaluation_row(
    curves: dict[int, tuple[np.ndarray, bool]],
    base: dict[int, tuple[np.ndarray, bool]],
    targets: tuple[float, float],
    window: int,
) -> dict[str, Any]:
    """One optimizer's evaluation seeds (``curves``: seed → loss at the deployed weights, and
    whether it finished) against the tuned baseline's, at T with window W and at the paper's
    T with W = 400 (``targets``): README step 6."""
    threshold, paper_threshold = targets
    steps, base_steps = seed_steps(curves, threshold, window), seed_steps(base, threshold, window)
    pairs = np.array([real_saving(base_steps[s], v) for s, v in steps.items() if s in base_steps])
    pairs = pairs[~np.isnan(pairs)]
    median = float(np.median(list(steps.values())))
    index = curve_index(curves, threshold, window)
    base_index = curve_index(base, threshold, window)
    return {
        "window": window,
        "threshold": threshold,
        "seeds": len(steps),
        "reached": sum(math.isfinite(v) for v in steps.values()),
        "diverged": sum(not finished for _, finished in curves.values()),
        "median_steps": median,
        "saving_median": real_saving(float(np.median(list(base_steps.values()))), median),
        "saving_paired": pairs.mean() if len(pairs) else math.nan,
        "saving_paired_ci95": ci95(pairs),
        "p_value": one_sample_p(pairs),
        "n_paired": len(pairs),
        "curve_steps": index + window,
        "saving_curve": real_saving(base_index + window, index + window),
        "saving_index_w400": saving(
            curve_index(base, paper_threshold, WINDOW), curve_index(curves, paper_threshold, WINDOW)
        ),
        "per_seed": " ".join(
            f"{s}:{'miss' if math.isinf(v) else int(v)}" for s, v in sorted(steps.items())
        ),
    }


def verdict(row: Any, base: Any) -> str:
    """README step 7: saves, loses, or no difference shown; the baseline is the baseline."""
    if row.optimizer == row.baseline:
        return "baseline"
    if row.reached < base.reached or (row.p_value < 0.05 and row.saving_paired < 0):
        return "loses"
    if row.p_value < 0.05 and row.saving_paired > 0:
        return "saves"
    return "no difference shown"


def percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.1f} %"


def markdown(table: pd.DataFrame) -> str:
    """The evaluation as README step 6 reports it, failure-aware figure first."""

    def paired(r: Any) -> str:
        if r.optimizer == r.baseline:
            return "–"
        if r.n_paired < 2:
            return f"no interval: {r.n_paired} seed pair{'s' if r.n_paired != 1 else ''}"
        spread = f"{100 * r.saving_paired:.1f} ± {100 * r.saving_paired_ci95:.1f} %"
        return f"{spread} (p={r.p_value:.2g}, {r.n_paired} seeds)"

    def steps(v: float) -> str:
        return f"{v:,.0f}" if math.isfinite(v) else "∞" if math.isinf(v) else "–"

    shown = pd.DataFrame(
        {
            "task": table["task"],
            "optimizer": table["optimizer"],
            "rate": [f"{r:g} ({s:g}×)" for r, s in zip(table["rate"], table["scale"], strict=True)],
            "reach T": [
                f"{r} of {n}" for r, n in zip(table["reached"], table["seeds"], strict=True)
            ],
            "diverged": table["diverged"],
            "median steps to T (miss = ∞)": table["median_steps"].map(steps),
            "saving, median": [
                "–" if o == b else percent(v)
                for o, b, v in zip(
                    table["optimizer"], table["baseline"], table["saving_median"], strict=True
                )
            ],
            "saving per seed (real steps)": [paired(r) for r in table.itertuples()],
            "seed-mean curve: steps, saving": [
                f"{steps(r.curve_steps)}"
                + ("" if r.optimizer == r.baseline else f", {percent(r.saving_curve)}")
                for r in table.itertuples()
            ],
            "paper's index, W = 400": [
                "–" if r.optimizer == r.baseline else percent(r.saving_index_w400)
                for r in table.itertuples()
            ],
            "verdict": table["verdict"],
        }
    )
    return shown.to_markdown(index=False)
