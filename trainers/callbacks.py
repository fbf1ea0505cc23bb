"""Callbacks: evaluation at base weights, per-step records (incl. loss at base weights), results."""

from __future__ import annotations

import math
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.loggers import Logger

from trainers.base_weights import (
    deployed_weights,
    moves_weights,
    run_optimizer,
    state_to_device,
)
from trainers.compute import compute_of
from trainers.module import TrainModule
from trainers.optim import resolved_kernels
from trainers.results import STEP_FIELDS, RunResults, Status
from trainers.timing import Stopwatch, compile_clock, step_time_stats


class BaseWeightsEvaluation(pl.Callback):
    """Validation and test see the weights a user would deploy (see ``deployed_weights``)."""

    def __init__(self) -> None:
        self._ctx: Any = None

    def _to_base(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        opt = run_optimizer(trainer)
        if moves_weights(opt):
            self._ctx = deployed_weights(opt, module)
            self._ctx.__enter__()

    def _back(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            ctx.__exit__(None, None, None)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._to_base(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._back(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        opt = run_optimizer(trainer)
        if opt is not None:
            state_to_device(opt, pl_module.device)
        self._to_base(trainer, pl_module)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._back(trainer, pl_module)


class LossProgressBar(RichProgressBar):
    """Rich progress bar that also shows the last training loss (logged in bulk elsewhere),
    without the logger's version number, which is no metric."""

    def get_metrics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        if isinstance(pl_module, TrainModule) and "loss" in pl_module.last_step:
            loss = pl_module.last_step["loss"].nanmean()  # vectorized: the members still training
            metrics["loss"] = f"{loss.item():.4g}"
        return metrics


def run_meta(
    trainer: pl.Trainer, pl_module: pl.LightningModule, vectorized: bool
) -> dict[str, Any]:
    """What a run was computed with (versions, commit, device, precision, kernels, CPU threads),
    for meta.json; trainers/compute.py says why float32 results depend on it."""
    opt = run_optimizer(trainer)
    kernels = resolved_kernels(opt) if opt is not None else None
    return {
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "device": str(pl_module.device),
        "precision": str(trainer.precision),
        **compute_of(kernels, pl_module.device, torch.get_num_threads(), vectorized),
    }


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class StepRecorder(pl.Callback):
    """Records every step (and every evaluation) into the run's results folder.

    Every optimizer is measured at one point, as the reference measured it: the weights a user
    would deploy, on the step's batch, before the update, in the training forward's precision
    context. For an optimizer that holds other weights (Overshoot, Lookahead, schedule-free) that
    is a no-grad forward at the deployed weights before the step, with the RNG and the model's
    buffers (e.g. BatchNorm statistics) restored, so it leaves training untouched; for any other
    optimizer it is the training loss itself. ``loss`` is the training loss at the held weights.

    Each step's own duration (forward, backward and optimizer step: ``TrainModule.step_clock``,
    started here after the metric's forward) is a ``steps.csv`` column, and ``meta.json`` gets
    its median (``step_time_s``); the metric's forward, evaluation and compilation are timed
    apart. Step values stay on the device and are written
    (CSV every step, TensorBoard at the last step of each block) every
    ``trainer.log_every_n_steps`` steps: one host sync per block, not per step. A non-finite
    value stops the run with status ``diverged`` at its step.
    """

    vectorized = False  # members of a vectorized job compute in batched kernels

    def __init__(self, results: RunResults, config_yaml: str, base_loss: bool = True) -> None:
        self.results = results
        self.config_yaml = config_yaml
        self.base_loss = base_loss
        self.start = 0.0
        self.lr = 0.0
        self.status = Status.FINISHED
        self.diverged_at: int | None = None
        self.pending: list[tuple[dict[str, Any], dict[str, torch.Tensor]]] = []
        self.deployed: dict[str, torch.Tensor] = {}
        self.recorded_step = 0
        self.resumed_wall_time: float | None = None
        self.metric_time = Stopwatch()
        self.eval_time = Stopwatch()
        self.compile_time = 0.0  # before this process's share: a resumed run's earlier ones
        self.compile_start = compile_clock().seconds

    def state_dict(self) -> dict[str, Any]:
        return {
            "wall_time": time.perf_counter() - self.start,
            "metric_time": self.metric_time.seconds,
            "eval_time": self.eval_time.seconds,
            "compile_time": self.compile_seconds(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.resumed_wall_time = float(state_dict["wall_time"])
        self.metric_time = Stopwatch(float(state_dict.get("metric_time", 0.0)))
        self.eval_time = Stopwatch(float(state_dict.get("eval_time", 0.0)))
        self.compile_time = float(state_dict.get("compile_time", 0.0))

    def compile_seconds(self) -> float:
        """Time this run spent in ``torch.compile`` (this process's share, plus a resumed run's
        earlier share)."""
        return self.compile_time + compile_clock().seconds - self.compile_start

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        cuda = pl_module.device.type == "cuda"
        self.metric_time.cuda = self.eval_time.cuda = cuda
        assert isinstance(pl_module, TrainModule)
        pl_module.step_clock.cuda = cuda
        if self.resumed_wall_time is not None:
            return  # resuming: on_train_start, once the checkpoint's step is restored
        self.start = time.perf_counter()
        self.start_results(trainer, run_meta(trainer, pl_module, self.vectorized))

    def start_results(self, trainer: pl.Trainer, meta: dict[str, Any]) -> None:
        """Open the results folder: config.yaml and meta.json (``meta``: the run's provenance)."""
        logs = trainer.logger.log_dir if trainer.logger is not None else None
        self.results.start(self.config_yaml, {**meta, "logs": logs})

    def open_results(self) -> list[RunResults]:
        """The results folders still being written (one; vectorized jobs: every member's)."""
        return [self.results]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.resumed_wall_time is not None:
            self.start = time.perf_counter() - self.resumed_wall_time
            self.recorded_step = trainer.global_step
            for results in self.open_results():
                results.resume(trainer.global_step)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.flush(trainer)
        for results in self.open_results():
            results.sync()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Ctrl-C, SIGTERM or an error: keep what was recorded and say how the run stopped."""
        started = [r for r in self.open_results() if r.meta]
        if not started:
            return  # failed before the run started: nothing to keep
        self.flush(trainer, reduce=False)
        stopped = isinstance(exception, KeyboardInterrupt | SystemExit)
        for results in started:
            results.close(
                Status.INTERRUPTED if stopped else Status.FAILED,
                stopped_at_step=trainer.global_step,
                error=None if stopped else f"{type(exception).__name__}: {exception}",
            )

    def _at_deployed(
        self, module: TrainModule, opt: torch.optim.Optimizer, batch: Any
    ) -> dict[str, torch.Tensor]:
        """Loss and metrics at the deployed weights, training state left bit for bit."""
        buffers = [b.detach().clone() for b in module.model.buffers()]
        with torch.random.fork_rng(devices=[]), torch.no_grad(), deployed_weights(opt, module):
            loss, metrics = module.batch_loss(batch)
        with torch.no_grad():
            for b, saved in zip(module.model.buffers(), buffers, strict=True):
                b.copy_(saved)
        return {"loss_base": loss, **metrics}

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Measure before the update (on the micro-batch that completes the step)."""
        assert isinstance(pl_module, TrainModule)
        opt = run_optimizer(trainer)
        self.lr = float(opt.param_groups[0]["lr"]) if opt is not None else 0.0
        self.deployed = {}
        steps_now = (batch_idx + 1) % trainer.accumulate_grad_batches == 0 or trainer.is_last_batch
        if self.base_loss and steps_now and opt is not None and moves_weights(opt):
            with self.metric_time, trainer.precision_plugin.train_step_context():
                self.deployed = self._at_deployed(pl_module, opt, batch)
        pl_module.step_clock.start()  # stopped when the optimizer has stepped

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        assert isinstance(pl_module, TrainModule)
        pl_module.step_clock.stop()
        if trainer.global_step == self.recorded_step:
            return  # accumulating gradients: one row per optimizer step (its last micro-batch)
        self.recorded_step = trainer.global_step
        values = dict(pl_module.last_step)
        values["loss_base"] = values["loss"]  # held = deployed weights, unless measured apart
        values.update(self.deployed)
        info = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "lr": self.lr,
            "wall_time": round(time.perf_counter() - self.start, 4),
            "step_time": pl_module.step_clock.take(),
        }
        self.pending.append((info, values))
        if len(self.pending) >= trainer.log_every_n_steps:  # type: ignore[attr-defined]
            self.flush(trainer)

    def flush(self, trainer: pl.Trainer, reduce: bool = True) -> None:
        """Write the pending steps; stop the run at the first non-finite loss.

        Every rank flushes at the same steps (``reduce`` is a collective), except when a rank
        fails alone (``reduce=False``), which keeps its own values.
        """
        if not self.pending:
            return
        names = list(self.pending[0][1])
        rows = torch.stack([torch.stack([v[n].double() for n in names]) for _, v in self.pending])
        if reduce:  # DDP: each rank saw its slice of the batch; record the global batch's mean
            rows = trainer.strategy.reduce(rows, reduce_op="mean")
        infos = [{**i, "step_time": round(i["step_time"].seconds(), 7)} for i, _ in self.pending]
        self.pending.clear()
        self.write_rows(trainer, infos, names, rows)

    def write_rows(
        self, trainer: pl.Trainer, infos: list[dict[str, Any]], names: list[str], rows: Any
    ) -> None:
        """Write one block of steps (``rows``: steps × values)."""
        bad = write_steps(self.results, trainer.logger, infos, names, rows.tolist())
        if bad is not None and self.diverged_at is None:
            self.status, self.diverged_at = Status.DIVERGED, bad
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush(trainer)

    def _record_eval(self, trainer: pl.Trainer, stage: str) -> None:
        row = eval_row(trainer, stage)
        if row is not None:
            self.results.append("evals.csv", row, EVAL_FIELDS)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.eval_time.__enter__()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.eval_time.__exit__()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.eval_time.__enter__()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.eval_time.__exit__()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record_eval(trainer, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record_eval(trainer, "test")

    def finish(self, trainer: pl.Trainer, **meta: Any) -> None:
        """Close the step files and record how the run ended (``meta``: extra fields)."""
        times = self.times(trainer, self.results)
        self.results.finish(self.status, **meta, diverged_at_step=self.diverged_at, **times)

    def times(self, trainer: pl.Trainer, results: RunResults) -> dict[str, Any]:
        """Where the time went: seconds per training step (``step_time_s``, the median of the
        steps' own durations in ``results``' steps.csv after a warm-up, and its interquartile
        range), and apart from it the wall time, the metric's forward at the deployed weights,
        validation and test, and ``torch.compile``."""
        results.sync()
        return {
            "steps": trainer.global_step,
            "wall_time_s": round(time.perf_counter() - self.start, 3),
            **step_time_stats(results.dir / "steps.csv.part"),
            "metric_time_s": round(self.metric_time.seconds, 3),
            "eval_time_s": round(self.eval_time.seconds, 3),
            "compile_time_s": round(self.compile_seconds(), 3),
        }


EVAL_FIELDS = ["stage", "epoch", "step", "loss", "accuracy"]


def eval_row(trainer: pl.Trainer, stage: str, member: str = "") -> dict[str, Any] | None:
    """The evals.csv row of the evaluation that just ended (``member``: its metrics' suffix)."""
    metrics = trainer.callback_metrics
    if f"{stage}/loss{member}" not in metrics:
        return None
    row: dict[str, Any] = {
        "stage": stage,
        "epoch": trainer.current_epoch,
        "step": trainer.global_step,
    }
    for name in ("loss", "accuracy"):
        if f"{stage}/{name}{member}" in metrics:
            row[name] = float(metrics[f"{stage}/{name}{member}"])
    return row


def write_steps(
    results: RunResults,
    logger: Logger | None,
    infos: list[dict[str, Any]],
    names: list[str],
    table: list[list[float]],
) -> int | None:
    """Append a block of steps to steps.csv and its last step to the logger; return the step of
    the first non-finite value, if any."""
    bad = None
    for info, numbers in zip(infos, table, strict=True):
        results.append("steps.csv", {**info, **dict(zip(names, numbers, strict=True))}, STEP_FIELDS)
        if bad is None and not all(map(math.isfinite, numbers)):
            bad = info["step"]
    if logger is not None:
        tags = {f"train/{n}": x for n, x in zip(names, table[-1], strict=True)}
        logger.log_metrics({**tags, "lr": infos[-1]["lr"]}, step=infos[-1]["step"])
    return bad
