"""Vectorized members against separate runs (issues #20, #43): per seed, where each crossed T.

A grid run as the members of vectorized jobs (float32, batched kernels) rounds differently from
the same grid as separate runs, and the difference grows over a long run. What that changes is
where each seed's curve crosses each target, which this script sets side by side from the two
folders' ``steps_to_threshold.csv`` (``scripts/report.py``; each folder at its own baseline's T),
into ``--out``:

- ``crossings.csv``: task, optimizer, fraction, seed, the step index at which the separate run
  and the member crossed (empty where a seed never reached T) and the member's minus the run's.
- ``crossings.md``: per task, the rows optimizer × fraction: both T, the seeds that cross at the
  same step, the median and the largest |difference|, and both mean-curve savings.

    python scripts/members_vs_separate.py results/paper_v1_vectorized results/paper_v1 \
        --out results/paper_v1_vectorized/vs_separate
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import pandas as pd

from trainers.results import write_atomic

TABLE = "steps_to_threshold.csv"
KEY = ["task", "optimizer", "fraction"]
SEED = re.compile(r"(\d+):(\d+|censored)")  # per_seed: "10:107 20:censored ..."
SIDES = ("separate", "members")


def per_seed(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, optimizer, fraction, seed) of a report's table: the index at which
    the seed crossed T (NaN: never; a family without T has no rows)."""
    rows = [
        {
            **{k: getattr(row, k) for k in KEY},
            "seed": int(seed),
            "index": math.nan if at == "censored" else float(at),
        }
        for row in table.itertuples(index=False)
        for seed, at in SEED.findall(str(row.per_seed))
    ]
    return pd.DataFrame(rows, columns=[*KEY, "seed", "index"])


def crossings(separate: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """The two reports' per-seed crossings joined on (task, optimizer, fraction, seed), and
    the member's minus the separate run's (NaN where either never reached T)."""
    both = pd.merge(per_seed(separate), per_seed(members), on=[*KEY, "seed"], suffixes=("_s", "_m"))
    both = both.rename(columns={"index_s": SIDES[0], "index_m": SIDES[1]})
    both["difference"] = both[SIDES[1]] - both[SIDES[0]]
    return both.sort_values([*KEY, "seed"], ignore_index=True)


def summary(separate: pd.DataFrame, members: pd.DataFrame, joined: pd.DataFrame) -> pd.DataFrame:
    """Per (task, optimizer, fraction): both T, how many seeds cross at the same step, the
    median and largest |difference| over the seeds both reach T, and both mean-curve savings."""
    cols = [*KEY, "threshold", "savings"]
    tables = pd.merge(separate[cols], members[cols], on=KEY, suffixes=("_separate", "_members"))
    diffs = joined.assign(abs_difference=joined["difference"].abs()).groupby(KEY)
    counts = pd.DataFrame(
        {
            "n_seeds": diffs.size(),
            "n_same": diffs["difference"].apply(lambda d: int((d == 0).sum())),
            "n_one_misses": diffs.apply(
                lambda g: int(g[list(SIDES)].isna().sum(axis=1).eq(1).sum())
            ),
            "median_abs_difference": diffs["abs_difference"].median(),
            "max_abs_difference": diffs["abs_difference"].max(),
            "median_separate": diffs[SIDES[0]].median(),
        }
    ).reset_index()
    return pd.merge(tables, counts, on=KEY).sort_values(KEY, ignore_index=True)


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "# Members against separate runs: per-seed crossings",
        "",
        "Steps are indices past the smoothing window, as the reports give them; each folder at",
        "its own baseline's T; a seed that one side never brought to T counts in `one misses`.",
    ]
    for task, rows in table.groupby("task"):
        lines += [
            "",
            f"## {task}",
            "",
            "| optimizer | fraction | T separate / members | seeds at the same step | one misses "
            "| median / max \\|difference\\| (median crossing) | saving separate → members |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows.itertuples(index=False):
            lines.append(
                f"| {r.optimizer} | {r.fraction:g} | {r.threshold_separate:.4g} / "
                f"{r.threshold_members:.4g} | {r.n_same} of {r.n_seeds} | {r.n_one_misses} | "
                f"{_steps(r.median_abs_difference)} / {_steps(r.max_abs_difference)} "
                f"({_steps(r.median_separate)}) | {_pct(r.savings_separate)} → "
                f"{_pct(r.savings_members)} |"
            )
    return "\n".join(lines) + "\n"


def _steps(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.0f}"


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f} %"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.splitlines()[0])
    parser.add_argument("members", type=Path, help=f"the members' report folder ({TABLE})")
    parser.add_argument("separate", type=Path, help=f"the separate runs' report folder ({TABLE})")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    tables = []
    for folder in (args.separate, args.members):
        if not (folder / TABLE).is_file():
            parser.exit(2, f"{parser.prog}: error: no {TABLE} in {folder}\n")
        tables.append(pd.read_csv(folder / TABLE))
    separate, members = tables
    joined = crossings(separate, members)
    if joined.empty:
        parser.exit(2, f"{parser.prog}: error: {args.separate} and {args.members} share no row\n")
    write_atomic(args.out / "crossings.csv", joined.to_csv(index=False))
    write_atomic(args.out / "crossings.md", markdown(summary(separate, members, joined)))
    print(f"crossings: {args.out / 'crossings.md'}")


if __name__ == "__main__":
    main()
