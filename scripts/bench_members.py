"""Seed-steps per second of vectorized members against a plain single-seed loop (issue #44).

Per task (``hparams=paper_v1``), one training step as the harness takes it: forward, loss,
backward, the optimizer's update, and the metric's no-grad forward at the deployed weights. A
plain loop does it for one seed; ``Members`` (trainers/members/stacked.py) for S seeds at once,
on one real batch per member. Each is timed in interleaved repeats (median step, after a warm-up);
the plain loop is timed twice per repeat, and the second against the first is the null pair
(1.00 ± its spread). Beside them the arithmetic limit: the step's FLOPs (torch's FlopCounter)
per member over the GFLOP/s of one batched matmul of the first layer's shape, and the CPU-hours
of the tuning protocol (7 rates × 3 tuning seeds + 10 evaluation seeds, 10 optimizers) at the
task's paper_v1 budget and at the members' best rate.

``--lightning S`` times S seeds as a user trains them, whole ``main.py`` commands (start-up,
data, fit and test): as the members of one job (``members.apart=false``), as ``vectorize=true``
chooses (members, or separate one-thread runs side by side on conv nets on a CPU), and as a
multirun of separate runs (``hydra/launcher=local_parallel``, one thread each), the last twice a
repeat for its null pair; seed-steps/s and the ratio to the separate runs.

    OVERSHOOT_DATA=../shared/data python scripts/bench_members.py [--tasks mlp_housing,vae_mnist]
        [--members 1,10,30] [--steps 200] [--repeats 3] [--optimizer adamo] [--lightning 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

from scripts.bench_time_null import ChildFailed
from trainers.cli import CONFIGS
from trainers.fit import optimizer_factory, schedule, task_data
from trainers.members.stacked import Members

RUNS_PER_OPTIMIZER = 7 * 3 + 10  # the protocol: grid of 7 rates × 3 tuning seeds, 10 evaluation
ROOT = CONFIGS.parent
OPTIMIZERS = 10  # CM, NAG, SGDO γ 3/5/7, AdamW, NAdam, AdamO γ 3/5/7


def task_config(task: str, optimizer: str) -> Any:
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        return compose("config", [f"task={task}", "hparams=paper_v1", f"optimizer={optimizer}"])


def one_batch(cfg: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A real training batch of the task and its step budget at paper_v1."""
    datamodule = task_data(cfg, 0)
    datamodule.setup("fit")
    x, y = next(iter(datamodule.train_dataloader()))
    return x, y, schedule(cfg, datamodule)[0]


def stepper(cfg: Any, x: torch.Tensor, y: torch.Tensor, members: int) -> Callable[[], None]:
    """One harness step for ``members`` seeds (0: a plain single model)."""
    models = []
    for seed in range(max(members, 1)):
        torch.manual_seed(seed)
        models.append(instantiate(cfg.task.model))
    model = Members(models) if members else models[0]
    opt = optimizer_factory(cfg)(model.parameters())
    if members:
        x = x.unsqueeze(0).expand(members, *x.shape).contiguous()
        y = y.unsqueeze(0).expand(members, *y.shape).contiguous()

    def step() -> None:
        opt.zero_grad()
        loss = model.loss(model(x), y)
        (loss.sum() if members else loss).backward()
        opt.step()
        with torch.no_grad(), opt.base_weights():  # the metric: loss at the deployed weights
            model.loss(model(x), y)

    return step


def median_step(step: Callable[[], object], steps: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flops_per_step(cfg: Any, x: torch.Tensor, y: torch.Tensor) -> int:
    """A plain step's FLOPs: forward, backward and the metric's forward (the update is
    elementwise, a few FLOPs per parameter, and left out)."""
    model = instantiate(cfg.task.model)
    counter = FlopCounterMode(display=False)
    with counter:
        model.loss(model(x), y).backward()
        with torch.no_grad():
            model.loss(model(x), y)
    return int(counter.get_total_flops())


def matmul_gflops(cfg: Any, x: torch.Tensor, members: int) -> float:
    """GFLOP/s of one batched matmul of the batch against the largest layer's weights."""
    model = instantiate(cfg.task.model)
    weight = max((p.flatten(1) for p in model.parameters() if p.dim() >= 2), key=torch.numel)
    a = torch.randn(members, x.shape[0], weight.shape[1])
    b = torch.randn(members, weight.shape[1], weight.shape[0])
    seconds = median_step(lambda: torch.bmm(a, b), 200)
    return 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2] / seconds / 1e9


# How a user trains S seeds: main.py's overrides and the threads each process computes on.
WAYS = {
    "members": (["vectorize=true", "members.apart=false"], None),
    "vectorize": (["vectorize=true"], None),
    "separate": (["hydra/launcher=local_parallel"], "1"),
}


def lightning_command(task: str, optimizer: str, seeds: int, steps: int, way: str) -> list[str]:
    seed = ",".join(str(s) for s in range(1, seeds + 1))
    paper = (CONFIGS / "task_hparams" / "paper_v1" / f"{task}.yaml").is_file()
    hparams = "paper_v1" if paper else "current"
    args = [f"task={task}", f"hparams={hparams}", f"optimizer={optimizer}", f"seed={seed}"]
    args += [f"max_steps={steps}", "force=true", "~logger", "trainer.enable_progress_bar=false"]
    return ["-m", *args, *WAYS[way][0]]


def lightning_wall(command: list[str], threads: str | None) -> float:
    """Seconds of one main.py command, its runs filed in a folder of their own."""
    env = {**os.environ, **({"OMP_NUM_THREADS": threads} if threads else {})}
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, str(ROOT / "main.py"), *command, f"results_dir={out}"]
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=out, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:  # its own one line (e.g. missing data), not a traceback
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise ChildFailed(f"main.py {' '.join(command[1:4])} failed: {lines[-1]}")
    return seconds


def bench_lightning(task: str, optimizer: str, seeds: int, steps: int, repeats: int) -> None:
    """The ways of WAYS in interleaved repeats, the separate runs twice (the null pair)."""
    times: dict[str, list[float]] = {"separate": [], "null": [], "members": [], "vectorize": []}
    for repeat in range(repeats):
        order = ["separate", "members", "vectorize", "null"]
        for key in order[repeat % 2 :] + order[: repeat % 2]:
            way = "separate" if key == "null" else key
            command = lightning_command(task, optimizer, seeds, steps, way)
            times[key].append(lightning_wall(command, WAYS[way][1]))
    separate = statistics.median(times["separate"])
    pairs = [n / s for n, s in zip(times["null"], times["separate"], strict=True)]
    print(
        f"  main.py, {seeds} seeds × {steps} steps: separate runs {separate:.1f} s "
        f"({seeds * steps / separate:.0f} seed-steps/s), null pair {statistics.median(pairs):.2f} "
        f"({min(pairs):.2f}-{max(pairs):.2f})"
    )
    for way in ("members", "vectorize"):
        t = statistics.median(times[way])
        print(
            f"    {way:<9} {t:7.1f} s  {seeds * steps / t:6.0f} seed-steps/s  {separate / t:.2f}x"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="mlp_housing,vae_mnist")
    parser.add_argument("--members", default="1,10,30")
    parser.add_argument("--optimizer", default="adamo")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lightning", type=int, help="also time S seeds as main.py trains them")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.members.split(",")]
    print(
        f"torch threads {torch.get_num_threads()}; median step of {args.steps}, {args.repeats} "
        "interleaved repeats; seed-steps/s and their ratio to the plain loop"
    )
    for task in args.tasks.split(","):
        cfg = task_config(task, args.optimizer)
        x, y, budget = one_batch(cfg)
        plain_steps = {0: stepper(cfg, x, y, 0), "null": stepper(cfg, x, y, 0)}
        member_steps = {s: stepper(cfg, x, y, s) for s in sizes}
        times: dict[Any, list[float]] = {k: [] for k in [*plain_steps, *member_steps]}
        for repeat in range(args.repeats):  # the null pair side by side; the sizes rotate
            turn = repeat % len(sizes)
            order = [*plain_steps.items(), *list(member_steps.items())[turn:]]
            for key, step in order + list(member_steps.items())[:turn]:
                times[key].append(median_step(step, args.steps))
        plain = statistics.median(times[0])
        pairs = [n / p for n, p in zip(times["null"], times[0], strict=True)]
        flops = flops_per_step(cfg, x, y)
        print(
            f"{task}: plain loop {1e3 * plain:.3f} ms/step ({1 / plain:.0f} seed-steps/s), "
            f"null pair {statistics.median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f}), "
            f"{flops / 1e6:.1f} MFLOP/step"
        )
        best = 1 / plain
        for s in sizes:
            t = statistics.median(times[s])
            rate = s / t
            best = max(best, rate)
            limit = matmul_gflops(cfg, x, s) * 1e9 / flops
            print(
                f"  S={s:<3} {1e3 * t:8.3f} ms/job-step  {rate:8.0f} seed-steps/s  "
                f"{rate * plain:5.2f}x plain  (limit {limit:.0f} seed-steps/s, "
                f"{limit * plain:.1f}x)"
            )
        hours = OPTIMIZERS * RUNS_PER_OPTIMIZER * budget / best / 3600
        print(
            f"  protocol at paper_v1's {budget:,} steps: {OPTIMIZERS * RUNS_PER_OPTIMIZER} runs,"
            f" {hours:.1f} CPU-hours at {best:.0f} seed-steps/s; "
            f"2 CPU-hours fit {int(2 * 3600 * best / (OPTIMIZERS * RUNS_PER_OPTIMIZER)):,} "
            "steps a run"
        )
        if args.lightning:
            try:
                bench_lightning(task, args.optimizer, args.lightning, args.steps, args.repeats)
            except ChildFailed as e:
                parser.exit(2, f"{parser.prog}: error: {e}\n")


if __name__ == "__main__":
    main()
