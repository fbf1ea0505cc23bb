"""The paper's metric: steps to reach a fraction of the baseline's loss reduction.

Per task and family: average the base-weights loss curves over seeds, smooth with a trailing
moving average, set T = s_b[0] − f·(s_b[0] − s_b[end]) from the baseline's mean curve, and count
the first step where an optimizer's curve is ≤ T. The mean-curve crossing is the paper's number;
the same T applied to each seed's curve gives the spread (95 % CI) and a paired t-test against
the baseline with the same seed. A curve that never reaches T is censored, never a number.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from scripts.runs import Runs

DEFAULT_BASELINES = {"sgd": "sgd_momentum", "adam": "adam"}


def smooth(curve: pd.Series, window: int) -> pd.Series:
    return curve.rolling(window, min_periods=1).mean()


def mean_curve(curves: list[pd.Series]) -> pd.DataFrame:
    """Mean over seeds and the 95 % CI half-width per step (steps every curve has)."""
    table = pd.concat(curves, axis=1, join="inner")
    n = table.shape[1]
    half = (
        stats.t.ppf(0.975, n - 1) * table.std(axis=1) / math.sqrt(n)
        if n > 1
        else 0.0 * table.iloc[:, 0]
    )
    return pd.DataFrame({"mean": table.mean(axis=1), "ci95": half})


def first_crossing(smoothed: pd.Series, threshold: float) -> float:
    """First step with value ≤ threshold, NaN when never reached (censored)."""
    hit = smoothed.index[(smoothed <= threshold).to_numpy()]
    return float(hit[0]) if len(hit) else math.nan


def paired_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test; constant non-zero differences are certain (p = 0)."""
    diff = a - b
    if len(diff) < 2 or not diff.any():
        return math.nan
    if np.all(diff == diff[0]):
        return 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def ci95(values: np.ndarray) -> float:
    n = len(values)
    return (
        float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    )


def steps_to_threshold(
    runs: Runs,
    task: str,
    fractions: list[float],
    window: int,
    baselines: dict[str, str] = DEFAULT_BASELINES,
) -> pd.DataFrame:
    """One row per (family, optimizer, fraction) of ``task``."""
    index = runs.index[runs.index["task"] == task]
    rows = []
    for family, fam in index.groupby("family"):
        baseline = baselines.get(family)
        if baseline not in set(fam["optimizer"]):
            baseline = None

        def seed_curves(opt: str, fam: pd.DataFrame = fam) -> dict[int, pd.Series]:
            sel = fam[fam["optimizer"] == opt]
            return {int(s): runs.curves[(task, opt, int(s))] for s in sel["seed"]}

        def finished_mean(opt: str, fam: pd.DataFrame = fam) -> pd.Series:
            sel = fam[(fam["optimizer"] == opt) & (fam["status"] == "finished")]
            curves = [runs.curves[(task, opt, int(s))] for s in sel["seed"]]
            return smooth(mean_curve(curves)["mean"], window) if curves else pd.Series(dtype=float)

        ref = finished_mean(baseline) if baseline else pd.Series(dtype=float)
        base_seeds = seed_curves(baseline) if baseline else {}
        for fraction in fractions:
            threshold = (
                ref.iloc[0] - fraction * (ref.iloc[0] - ref.iloc[-1]) if len(ref) else math.nan
            )
            base_steps = first_crossing(ref, threshold) if len(ref) else math.nan
            base_per_seed = {
                s: first_crossing(smooth(c, window), threshold) for s, c in base_seeds.items()
            }
            for opt in sorted(set(fam["optimizer"])):
                per_seed = {
                    s: first_crossing(smooth(c, window), threshold)
                    for s, c in seed_curves(opt).items()
                }
                reached = np.array([v for v in per_seed.values() if not math.isnan(v)])
                mean = finished_mean(opt)
                steps = first_crossing(mean, threshold) if len(mean) else math.nan
                pairs = [
                    (per_seed[s], base_per_seed[s])
                    for s in per_seed
                    if s in base_per_seed
                    and not math.isnan(per_seed[s])
                    and not math.isnan(base_per_seed[s])
                ]
                seed_savings = np.array([1 - o / b for o, b in pairs])
                p_value = math.nan
                if opt != baseline and pairs:
                    p_value = paired_p(*np.array(pairs).T)
                rows.append(
                    {
                        "task": task,
                        "family": family,
                        "optimizer": opt,
                        "baseline": baseline or "",
                        "fraction": fraction,
                        "threshold": threshold,
                        "steps": steps,
                        "steps_seed_mean": reached.mean() if len(reached) else math.nan,
                        "steps_ci95": ci95(reached),
                        "savings": 1 - steps / base_steps if base_steps else math.nan,
                        "savings_seed_mean": (
                            seed_savings.mean() if len(seed_savings) else math.nan
                        ),
                        "savings_ci95": ci95(seed_savings),
                        "p_value": p_value,
                        "n_seeds": len(per_seed),
                        "n_censored": len(per_seed) - len(reached),
                        "per_seed": " ".join(
                            f"{s}:{'censored' if math.isnan(v) else int(v)}"
                            for s, v in sorted(per_seed.items())
                        ),
                    }
                )
    return pd.DataFrame(rows)
