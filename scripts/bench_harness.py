"""Training steps/s of main.py against a plain PyTorch loop doing the same work.

Both sides build the model, data, batch size, optimizer and cosine schedule from the same Hydra
config and train ``--steps`` steps with a validation pass at every epoch end. The plain loop and
a stock LightningModule (what Lightning itself costs, with no harness around it; once more with
the base-weights forward a user would add) run in this process; main.py runs as users run it
(a subprocess), and its speed is read from the per-step
wall times it writes, over the same step range as the loop's. The variants run interleaved
``--repeats`` times and the medians are compared, because a shared CPU's speed drifts between
runs by more than the effect measured. ``--device cuda`` runs all three on the GPU in float32,
with the data held there as main.py holds it; losses stay on the device (no sync per step).

``--vectorize S`` measures throughput on the paper's protocol instead: seed-steps/s of main.py
training S seeds as members of one job (``vectorize=true``) against the plain single-seed loop
doing the same work per seed (the training step and the base-weights forward).

    python scripts/bench_harness.py [--task mlp_housing] [--optimizer sgdo] [--steps 4000]
                                    [--device cpu|cuda] [--vectorize S] [OVERRIDE ...]

Trailing Hydra overrides go to both sides (e.g. ``+trainer.limit_test_batches=1``, which
device_check's dry run passes so the final test does not outlast ten steps).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

if TYPE_CHECKING:
    from models import TaskModel


from trainers.fit import optimizer_factory
from trainers.results import run_folders

ROOT = Path(__file__).resolve().parents[1]


def build(overrides: list[str], steps: int, device: str) -> tuple[Any, TaskModel, Any, Any]:
    """Datamodule, model, optimizer and cosine schedule of the config, as main.py builds them."""
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        cfg = compose("config", overrides)
    pl.seed_everything(cfg.seed, verbose=False)
    hp = cfg.task[cfg.optimizer.family]
    data = instantiate(cfg.task.data, root=cfg.data.root, batch_size=hp.batch_size, seed=cfg.seed)
    data.setup()
    data.move_to(device)
    model: TaskModel = instantiate(cfg.task.model).to(device)
    opt = optimizer_factory(cfg)(model.parameters())  # the fastest path, as main.py runs it
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=steps + 1)
    return data, model, opt, sched


def clock(device: str) -> float:
    """Wall time once the device has finished the work queued so far."""
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def plain_loop(
    overrides: list[str], steps: int, skip: int, device: str, base_forward: bool = False
) -> float:
    """Steps/s of a hand-written loop on the objects main.py would build; ``base_forward`` adds
    the loss at the base weights before each step, as main.py measures it."""
    data, model, opt, sched = build(overrides, steps, device)
    base_weights = getattr(opt, "base_weights", None) if base_forward else None
    step, start, losses = 0, 0.0, []
    for _ in range(math.ceil(steps / data.batches_per_epoch())):
        model.train()
        for x, y in data.train_dataloader():
            if base_weights is not None:
                with torch.no_grad(), base_weights():
                    losses.append(model.loss(model(x), y))
            loss = model.loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.detach())  # kept, as main.py keeps every step's loss
            step += 1
            if step == skip:
                start = clock(device)
            if step == steps:
                return (steps - skip) / (clock(device) - start)
        model.eval()
        with torch.no_grad():
            for x, y in data.val_dataloader():
                model.loss(model(x), y).item()
    raise RuntimeError(f"the data ran out before {steps} steps")


class Stock(pl.LightningModule):
    """A stock LightningModule doing the same work: what Lightning itself costs per step.

    ``base_forward`` adds the paper's measurement as a user would write it: a no-grad forward at
    the base weights before each step, for an optimizer that holds other weights.
    """

    def __init__(
        self, model: TaskModel, opt: Any, sched: Any, skip: int, steps: int, base_forward: bool
    ):
        super().__init__()
        self.model, self.opt, self.sched = model, opt, sched
        self.skip, self.steps = skip, steps
        self.base_weights = getattr(opt, "base_weights", None) if base_forward else None
        self.times: dict[int, float] = {}
        self.losses: list[torch.Tensor] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        if self.base_weights is not None:
            with torch.no_grad(), self.base_weights():
                self.losses.append(self.model.loss(self.model(batch[0]), batch[1]))
        loss = self.model.loss(self.model(batch[0]), batch[1])
        self.losses.append(loss.detach())
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step in (self.skip, self.steps):
            self.times[self.global_step] = clock(self.device.type)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.model.loss(self.model(batch[0]), batch[1]).item()

    def configure_optimizers(self) -> Any:
        schedule = {"scheduler": self.sched, "interval": "step"}
        return {"optimizer": self.opt, "lr_scheduler": schedule}


def stock_lightning(
    overrides: list[str], steps: int, skip: int, device: str, base_forward: bool
) -> float:
    """Steps/s of the same loop run by a stock LightningModule and Trainer."""
    data, model, opt, sched = build(overrides, steps, device)
    module = Stock(model, opt, sched, skip, steps, base_forward)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data)
    return (steps - skip) / (module.times[steps] - module.times[skip])


def harness(
    overrides: list[str], steps: int, skip: int, base_loss: bool, members: int = 0
) -> float:
    """Steps/s of ``main.py`` over steps ``skip..steps`` (from the wall times it records); with
    ``members``, seed-steps/s of that many seeds trained as one vectorized job."""
    seeds = ["vectorize=true", f"members.seed=[{','.join(map(str, range(members)))}]"]
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            *overrides,
            *(seeds if members else []),
            f"max_steps={steps}",
            f"compute_base_model_loss={str(base_loss).lower()}",
            f"results_dir={tmp}",
            "experiment_name=bench_harness",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={tmp}/hydra",
        ]
        subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args],
            check=True,
            capture_output=True,
            cwd=tmp,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            },
        )
        # Members share the wall clock; one that diverged stopped writing, so take the longest.
        walls = [pd.read_csv(r / "steps.csv") for r in run_folders(Path(tmp) / "bench_harness")]
        wall = max(walls, key=len).set_index("step")["wall_time"]
        if steps not in wall.index:
            raise SystemExit(f"every run diverged before step {steps}; pass fewer --steps")
        return max(members, 1) * (steps - skip) / (wall[steps] - wall[skip])


def vectorized(
    overrides: list[str], steps: int, skip: int, device: str, members: int, repeats: int
) -> None:
    """Print seed-steps/s of ``members`` vectorized seeds against the plain single-seed loop."""
    plain, full = [], []
    for _ in range(repeats):
        plain.append(plain_loop(overrides, steps, skip, device, base_forward=True))
        full.append(harness(overrides, steps, skip, base_loss=True, members=members))
    low, high, median = min(full), max(full), statistics.median(full)
    where = (
        torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} threads"
    )
    print(f"{' '.join(overrides)}, {steps} steps, {where}, median of {repeats}")
    print(f"plain single-seed loop (step + base-weights loss): {statistics.median(plain):8.0f}")
    print(
        f"main.py, {members} members (seed-steps/s):{median:16.0f}  ({low:.0f}-{high:.0f}), "
        f"{median / statistics.median(plain):.2f}x the plain loop"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mlp_housing")
    parser.add_argument("--optimizer", default="sgdo")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--skip", type=int, default=200, help="warm-up steps left out")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--vectorize", type=int, default=0, metavar="S", help="members")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both sides")
    args = parser.parse_args()
    trainer = ["trainer=gpu", "precision=32-true"] if args.device == "cuda" else ["trainer=cpu"]
    overrides = [f"task={args.task}", f"optimizer={args.optimizer}", *trainer, *args.overrides]
    steps, skip, device = args.steps, args.skip, args.device
    if args.vectorize:
        vectorized(overrides, steps, skip, device, args.vectorize, args.repeats)
        return
    runs: dict[str, list[float]] = {k: [] for k in ("plain", "stock", "lean", "stock_base", "full")}
    for _ in range(args.repeats):
        runs["plain"].append(plain_loop(overrides, steps, skip, device))
        runs["stock"].append(stock_lightning(overrides, steps, skip, device, base_forward=False))
        runs["lean"].append(harness(overrides, steps, skip, base_loss=False))
        runs["stock_base"].append(stock_lightning(overrides, steps, skip, device, True))
        runs["full"].append(harness(overrides, steps, skip, base_loss=True))
    plain = statistics.median(runs["plain"])
    where = (
        torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} threads"
    )
    print(f"{args.task} / {args.optimizer}, {steps} steps, {where}, median of {args.repeats}")
    print(f"{'':42} {'steps/s':>8} {'ratio':>6}  {'range':>11}  {'/ stock':>7}")
    labels = {
        "plain": "plain PyTorch loop",
        "stock": "stock LightningModule + Trainer",
        "lean": "main.py, no base-weights loss",
        "stock_base": "stock LightningModule + base-weights loss",
        "full": "main.py, loss at base weights",
    }
    medians = {key: statistics.median(runs[key]) for key in labels}
    stock_of = {"lean": "stock", "full": "stock_base"}  # main.py against the same work
    for key, label in labels.items():
        low, high = min(runs[key]), max(runs[key])
        vs = f"{medians[key] / medians[stock_of[key]]:7.2f}" if key in stock_of else ""
        line = (
            f"{label:42} {medians[key]:8.0f} {medians[key] / plain:6.2f}  {low:5.0f}-{high:<5.0f}"
        )
        print(f"{line}  {vs}")


if __name__ == "__main__":
    main()
