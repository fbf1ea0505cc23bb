"""The time null pair: an Overshoot optimizer at γ = 0 runs its baseline's very kernels, so its
step time must read 1.00 against the baseline's, measured as users measure it.

Runs, as a user does (main.py, one multirun per family, each seed's baseline before its
Overshoot runs), CM against SGDO at γ = 0 and 5 and AdamW against AdamO at γ = 0 on ``--task``
for ``--seeds`` seeds, then reads the report's ``step_time_ratio`` and ``time_savings``. Each
repeat is a fresh results folder; the median over ``--repeats`` is printed beside each repeat.
Targets: the γ = 0 pairs within 1 ± 0.05 (time savings within ± 0.05), SGDO γ = 5 at most 1.10×
CM. Then the update alone (``optimizer.step()`` on the task's parameters, the optimizers
stepping in turn) shows how much of a pair's difference is the optimizer's own step.

    python scripts/bench_time_null.py [--task mlp_energy] [--steps 1500] [--seeds 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from scripts.collect import load_runs
from scripts.report import add_wall_clock
from scripts.threshold import steps_to_threshold
from trainers.fit import optimizer_factory

ROOT = Path(__file__).resolve().parents[1]

FAMILIES = {  # one multirun each: (optimizers, baseline first; γ values)
    "sgd": ("sgd_momentum,sgdo", "0,5"),
    "adam": ("adamw,adamo", "0"),
}
PAIRS = {"sgdo_g0": (1.0, 0.05), "adamo_g0": (1.0, 0.05), "sgdo_g5": (None, 1.10)}


def run_grid(results: Path, task: str, steps: int, seeds: int) -> None:
    for optimizers, gammas in FAMILIES.values():
        cmd = [sys.executable, str(ROOT / "main.py"), "-m", f"task={task}"]
        cmd += [f"seed={','.join(map(str, range(seeds)))}", f"optimizer={optimizers}"]
        cmd += [f"optimizer.overshoot={gammas}", f"max_steps={steps}"]
        cmd += [f"results_dir={results}", "experiment_name=time_null", "hydra.sweep.dir=."]
        cmd += ["trainer.enable_progress_bar=false", "~logger"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=results)
        if proc.returncode != 0:  # its own one line (e.g. missing data), not a traceback
            lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            raise ChildFailed(f"main.py {' '.join(cmd[2:6])} failed: {lines[-1]}")


class ChildFailed(Exception):
    """A multirun of the bench failed; its message is the child's own last line."""


def ratios(results: Path, task: str) -> pd.DataFrame:
    runs = load_runs(results / "time_null")
    table = steps_to_threshold(runs, task, [0.95], window=400)
    table = add_wall_clock(table, runs)
    at = table[np.isclose(table["fraction"], 0.95)].set_index("optimizer")
    return at.loc[list(PAIRS), ["s_per_step", "step_time_ratio", "time_savings", "time_note"]]


UPDATES = {  # name: overrides; each is timed on the same parameters and gradients
    "sgd_momentum": ["optimizer=sgd_momentum"],
    "sgdo_g0": ["optimizer=sgdo", "optimizer.overshoot=0"],
    "sgdo_g5": ["optimizer=sgdo", "optimizer.overshoot=5"],
    "adamw": ["optimizer=adamw"],
    "adamo_g0": ["optimizer=adamo", "optimizer.overshoot=0"],
}


def update_times(task: str, steps: int = 3000, warmup: int = 100) -> dict[str, float]:
    """Median seconds of ``optimizer.step()`` alone per optimizer, on the task's model built as
    main.py builds it (kernels=fused), the optimizers stepping in turn, step after step."""
    opts = {}
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        for name, overrides in UPDATES.items():
            cfg = compose("config", [f"task={task}", *overrides])
            torch.manual_seed(0)
            model = instantiate(cfg.task.model)
            for p in model.parameters():
                p.grad = torch.randn_like(p) * 1e-3
            opts[name] = optimizer_factory(cfg)(model.parameters())
    times: dict[str, list[float]] = {name: [] for name in opts}
    for i in range(warmup + steps):
        for name, opt in opts.items():
            start = time.perf_counter()
            opt.step()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mlp_energy")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    found = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                run_grid(Path(tmp), args.task, args.steps, args.seeds)
            except ChildFailed as e:
                parser.exit(2, f"{Path(__file__).name}: error: {e}\n")
            table = ratios(Path(tmp), args.task)
        found.append(table)
        print(f"repeat {repeat + 1}:")
        for name, r in table.iterrows():
            print(
                f"  {name:9} {1e3 * r.s_per_step:.3f} ms/step  step_time_ratio "
                f"{r.step_time_ratio:.3f}  time_savings {r.time_savings:+.3f} {r.time_note}"
            )
    print(f"median of {args.repeats} ({args.task}, {args.steps} steps, {args.seeds} seeds):")
    for name, (target, tolerance) in PAIRS.items():
        ratio = statistics.median(t.loc[name, "step_time_ratio"] for t in found)
        saved = statistics.median(t.loc[name, "time_savings"] for t in found)
        if target is None:
            verdict = "ok" if ratio <= tolerance else f"over {tolerance}"
        else:
            inside = abs(ratio - target) <= tolerance and abs(saved) <= tolerance
            verdict = "ok" if inside else f"outside {target} ± {tolerance}"
        print(f"  {name:9} step_time_ratio {ratio:.3f}  time_savings {saved:+.3f}  {verdict}")
    step = statistics.median(t.loc["sgdo_g0", "s_per_step"] for t in found)
    updates = update_times(args.task)
    print(f"the update alone (optimizer.step(), median µs; a whole step is ~{1e6 * step:.0f} µs):")
    for name, baseline in (("sgdo_g0", "sgd_momentum"), ("sgdo_g5", "sgd_momentum")):
        print(_update_line(updates, name, baseline, step))
    print(_update_line(updates, "adamo_g0", "adamw", step))


def _update_line(updates: dict[str, float], name: str, baseline: str, step: float) -> str:
    ours, theirs = updates[name], updates[baseline]
    return (
        f"  {name:9} {1e6 * ours:7.1f}  {baseline:12} {1e6 * theirs:7.1f}  difference "
        f"{1e6 * (ours - theirs):+6.1f} µs = {100 * (ours - theirs) / step:+.1f} % of a step"
    )


if __name__ == "__main__":
    main()
