"""Everything a lent GPU is for, as one script (under 8 minutes on one H200): the tests that need
CUDA, the optimizer and members benchmarks, then as many paper_v1 seeds of 2c2d-FM and VAE-M as
the time left allows, trained as vectorized members, their archive left in ``--out``.

    python scripts/device_check.py --out "$OUT" --data .device_data      # on the GPU machine
    python scripts/device_check.py --dry --out /tmp/dry                  # CPU, tiny: CI runs it

On the device tool (15 minutes of device time a session): copy the data the tasks read into an
ignored folder of the clone and carry it with the wheels the machine lacks (hydra-core,
omegaconf, antlr4-python3-runtime, hydra-joblib-launcher, hydra-submitit-launcher, submitit,
pyarrow if absent; see /work/.library/device/README.md), e.g.
``mkdir -p .device_data && cp -r ../shared/data/{MNIST,FashionMNIST} .device_data/`` and
``run(command="pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
PYTHONPATH=/tmp/site python scripts/device_check.py --out $OUT --data .device_data",
carry=[".device_data", ".whl"], timeout_s=540)``. The archive comes back as three files under
``$OUT/archive``; ``python scripts/archive.py pack results/paper_v1 <that folder>`` merges it
with the runs here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# paper_v1 grids in the order they are worth having (fewest seeds committed first), each one
# multirun of vectorized jobs: (task, optimizers).
GRIDS = [
    ("2c2d_fmnist", "sgd_momentum,sgd_nesterov,sgdo"),
    ("vae_mnist", "sgd_momentum,sgd_nesterov,sgdo"),
    ("vae_mnist", "adamw,nadam,adamo"),
    ("2c2d_fmnist", "adamw,nadam,adamo"),
]
SEEDS = "10,20,30,40,50,60,70,80,90,100"


class Log:
    """Prints and keeps what each step printed, for ``--out``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        with open(self.path, "a") as f:
            f.write(text + "\n")


def step(log: Log, title: str, cmd: list[str], timeout: float, env: dict[str, str]) -> bool:
    """Run ``cmd`` from the clone; its output goes to the log. False if it failed or ran out."""
    log(f"== {title}: {' '.join(cmd)}")
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(timeout, 1)
        )
        out, ok = proc.stdout + proc.stderr, proc.returncode == 0
    except subprocess.TimeoutExpired as stopped:
        parts = (stopped.output, stopped.stderr)
        printed = "".join(p.decode() if isinstance(p, bytes) else p or "" for p in parts)
        out = f"{printed}\n(stopped after {timeout:.0f} s)"
        ok = False
    log(out.strip()[-6000:])
    log(f"== {title}: {'ok' if ok else 'FAILED'} in {time.monotonic() - start:.0f} s")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where logs and the archive go")
    parser.add_argument("--data", type=Path, help="data root (default: $OVERSHOOT_DATA)")
    parser.add_argument("--budget-s", type=float, default=450, help="the whole script's time")
    parser.add_argument("--dry", action="store_true", help="CPU, tiny step counts (CI)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    left = lambda: args.budget_s - (time.monotonic() - start)  # noqa: E731 - a clock
    log = Log(args.out / "device_check.log")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.data is not None:
        env["OVERSHOOT_DATA"] = str(args.data.resolve())
    results = args.out.resolve().parent / f"{args.out.name}_results"
    if args.dry:  # a fresh grid and archive each time, not "already finished" or merged
        shutil.rmtree(results, ignore_errors=True)
        shutil.rmtree(args.out / "archive", ignore_errors=True)
    py = [sys.executable]
    device = "cpu" if args.dry else "cuda"
    env["OVERSHOOT_TEST_DEVICE"] = device
    # dry: one batch of each evaluation (the full test sets took most of the dry run's time)
    one_batch = ["+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1"]
    trainer = ["trainer=cpu", *one_batch] if args.dry else ["trainer=gpu"]
    ok = step(log, "CUDA tests", [*py, "-m", "pytest", "-q", "tests/test_cuda.py"], 180, env)
    bench = [*py, "scripts/bench_optimizers.py", "--device", device]
    bench += ["--models", "mlp"] if args.dry else ["--steps", "200"]
    ok &= step(log, "optimizer benchmark", bench, 120, env)
    for task in (
        ("2c2d_fmnist",) if args.dry else ("2c2d_fmnist", "vae_mnist")
    ):  # dry: each kind once
        members = [*py, "scripts/bench_harness.py", "--task", task, "--device", device]
        members += ["--vectorize", "2" if args.dry else "10", "--repeats", "1" if args.dry else "2"]
        dry = ["--steps", "10", "--skip", "5", *one_batch, "members.apart=false"]  # as on a GPU
        members += dry if args.dry else ["--steps", "600"]
        ok &= step(log, f"members benchmark, {task}", members, 90, env)
    for task, optimizers in GRIDS[:1] if args.dry else GRIDS:
        if left() < 30:
            log(f"== no time left for {task} {optimizers}")
            continue
        grid = [*py, "main.py", "-m", "experiment=paper_v1", f"task={task}"]
        seeds = SEEDS
        if args.dry:  # the same commands, cut to one optimizer, one seed and five steps
            optimizers, seeds = optimizers.split(",")[-1], "10"
        grid += [f"optimizer={optimizers}", f"seed={seeds}", *trainer]
        grid += ["vectorize=true", f"results_dir={results}", "optimizer.overshoot=3,5,7"]
        grid += ["max_steps=5", "members.apart=false"] if args.dry else []  # members, as on a GPU
        step(log, f"paper_v1 {task} {optimizers}", grid, left() - 20, env)
    pack = [*py, "scripts/archive.py", "pack", str(results / "paper_v1")]
    ok &= step(log, "archive", [*pack, "--out", str(args.out / "archive")], 60, env)
    log(f"== done in {time.monotonic() - start:.0f} s; archive in {args.out / 'archive'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
