"""What a learning-rate grid's diverged members cost once they have ended.

A tuning grid's largest rates diverge. A vectorized job computes its live members alone once the
others have ended (``trainers/members/stacked.py``, ``Members.keep``); before, the ended kept
computing NaN until the job's end. This trains one job of ``--optimizer`` members at the task's rate
times 2^k (k = -3 … 3, ``members.lr_scale``) as users run it (main.py's config, one thread), once as
it runs and once with ``Members.keep`` disabled (the ended computing on: the old cost), interleaved
``--repeats`` times, and prints each job's median step time over the steps after its last member
ended, the median of the repeats' paired ratios, and the null pair (the old cost against itself,
repeat against repeat), which must read 1.00 within the machine's noise.

    python scripts/bench_ended_members.py [--task mlp_housing] [--optimizer sgd_momentum]
                                          [--steps 3000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from hydra import compose, initialize_config_dir

import main
from trainers.members.stacked import Members
from trainers.train import train

ROOT = Path(__file__).resolve().parents[1]


def job(argv: list[str], results: Path, drop: bool) -> tuple[float, int]:
    """The job's median step time after its last member ended (s), and how many ended."""
    args = main.checked_args([*argv, f"results_dir={results}"])
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", [a for a in args if not a.startswith("-")])
    keep = Members.keep
    if not drop:
        Members.keep = lambda self, live: None  # type: ignore[method-assign]
    try:
        summary: dict[str, Any] = train(cfg)
    finally:
        Members.keep = keep  # type: ignore[method-assign]
    folders = [Path(m["results"]) for m in summary["members"]]
    metas = [json.loads((f / "meta.json").read_text()) for f in folders]
    ended = [m["diverged_at_step"] for m in metas if m["diverged_at_step"] is not None]
    live = next(f for f, m in zip(folders, metas, strict=True) if m["status"] == "finished")
    steps = pd.read_csv(live / "steps.csv")
    after = steps[steps["step"] > max(ended, default=0) + 2 * cfg.trainer.log_every_n_steps]
    return float(after["step_time"].median()), len(ended)


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mlp_housing")
    parser.add_argument("--optimizer", default="sgd_momentum")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scales = ",".join(f"{2.0**k:g}" for k in range(-3, 4))
    argv = [f"task={args.task}", f"optimizer={args.optimizer}", f"max_steps={args.steps}"]
    argv += [f"members.lr_scale=[{scales}]", "lr_in_label=true", "vectorize=true"]
    argv += ["logger=csv", "trainer.enable_progress_bar=false", "checkpoint_every_n_epochs=0"]
    print(
        f"{args.task}, {args.optimizer}: one job at the task's rate × [{scales}], "
        f"{args.steps} steps"
    )
    times: dict[str, list[float]] = {"keep": [], "drop": []}
    for r in range(args.repeats):
        for mode in times:
            with tempfile.TemporaryDirectory() as tmp:
                seconds, ended = job(argv, Path(tmp), drop=mode == "drop")
            times[mode].append(seconds)
            print(f"  repeat {r}: {mode:4} {seconds * 1e3:.3f} ms/step after {ended} ended")
    drop, keep = (statistics.median(times[m]) for m in ("drop", "keep"))
    paired = [a / b for a, b in zip(times["drop"], times["keep"], strict=True)]
    null = [a / b for a, b in zip(times["keep"][1:], times["keep"][:-1], strict=True)]
    print(f"ended computing on: {keep * 1e3:.3f} ms/step; dropped: {drop * 1e3:.3f} ms/step")
    print(
        f"ratio dropped / computing on, median of the repeats' pairs: "
        f"{statistics.median(paired):.2f} ({', '.join(f'{x:.2f}' for x in paired)})"
    )
    print("null pair (computing on, repeat / previous): " + ", ".join(f"{x:.2f}" for x in null))


if __name__ == "__main__":
    main_()
