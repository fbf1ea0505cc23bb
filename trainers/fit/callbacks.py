"""What a run records and how it is timed: evaluation at the deployed weights, the progress bar,
and the recorder that files every step, evaluation and outcome in the results folder. Each
training step's own duration is timed by one clock that the recorder starts and the optimizer's
step ends, compilation counted apart, recurring work (the metric's forward, evaluation) summed
on its own, with no host sync per step on a GPU."""

from __future__ import annotations

import csv
import math
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.loggers import Logger
from torch._dynamo.callback import CallbackArgs, callback_handler

from trainers.fit import resolved_kernels
from trainers.fit.module import (
    TrainModule,
    deployed_weights,
    moves_weights,
    run_optimizer,
    state_to_device,
)
from trainers.plan import compute_of
from trainers.results import STEP_FIELDS, RunResults, Status


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
    for meta.json; trainers/plan.py says why float32 results depend on it."""
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

    Step values stay on the device and are written (CSV every step, TensorBoard at the last step
    of each block) every ``trainer.log_every_n_steps`` steps: one host sync per block, not per
    step. A non-finite value stops the run with status ``diverged`` at its step. ``clock``
    (``RunClock``) times the run.
    """

    vectorized = False  # members of a vectorized job compute in batched kernels

    def __init__(self, results: RunResults, config_yaml: str, base_loss: bool = True) -> None:
        self.results = results
        self.config_yaml = config_yaml
        self.base_loss = base_loss
        self.clock = RunClock()
        self.lr = 0.0
        self.status = Status.FINISHED
        self.diverged_at: int | None = None
        self.pending: list[tuple[dict[str, Any], dict[str, torch.Tensor]]] = []
        self.deployed: dict[str, torch.Tensor] = {}
        self.recorded_step = 0

    def state_dict(self) -> dict[str, Any]:
        return self.clock.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.clock.load_state_dict(state_dict)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.on_device(pl_module.device)
        if self.clock.resumed:
            return  # resuming: on_train_start, once the checkpoint's step is restored
        self.clock.begin()
        self.start_results(trainer, run_meta(trainer, pl_module, self.vectorized))

    def start_results(self, trainer: pl.Trainer, meta: dict[str, Any]) -> None:
        """Open the results folder: config.yaml and meta.json (``meta``: the run's provenance)."""
        logs = trainer.logger.log_dir if trainer.logger is not None else None
        self.results.start(self.config_yaml, {**meta, "logs": logs})

    def open_results(self) -> list[RunResults]:
        """The results folders still being written (one; vectorized jobs: every member's)."""
        return [self.results]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.stop_steps_with(run_optimizer(trainer))
        if self.clock.resumed:
            self.clock.begin()
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
            with self.clock.metric, trainer.precision_plugin.train_step_context():
                self.deployed = self._at_deployed(pl_module, opt, batch)
        self.clock.step.start()  # stopped by the optimizer's step hook, or at the batch's end

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        assert isinstance(pl_module, TrainModule)
        self.clock.step.stop()  # a micro-batch that accumulated its gradient: no step
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
            "wall_time": round(self.clock.wall_time(), 4),
            "step_time": self.clock.step.take(),
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
        self.clock.stop_steps_with(None)

    def _record_eval(self, trainer: pl.Trainer, stage: str) -> None:
        row = eval_row(trainer, stage)
        if row is not None:
            self.results.append("evals.csv", row, EVAL_FIELDS)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.eval.__enter__()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.eval.__exit__()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.eval.__enter__()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.eval.__exit__()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record_eval(trainer, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record_eval(trainer, "test")

    def finish(self, trainer: pl.Trainer, **meta: Any) -> None:
        """Close the step files and record how the run ended (``meta``: extra fields)."""
        times = self.clock.times(trainer.global_step, self.results)
        self.results.finish(self.status, **meta, diverged_at_step=self.diverged_at, **times)


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


# Time inside a run.
class CompileClock:
    """Seconds this process has spent in ``torch.compile`` (TorchDynamo's compile callbacks:
    AdamO's and the wrapper's fused kernels, HeavyBall's), so a step that compiled is timed
    without its compilation and the compilation is reported on its own."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._since: float | None = None

    def listen(self) -> None:
        """Register with TorchDynamo (again after ``torch._dynamo.reset()``, which clears)."""
        if self._start not in callback_handler.start_callbacks:
            callback_handler.register_start_callback(self._start)
            callback_handler.register_end_callback(self._end)

    def _start(self, args: CallbackArgs) -> None:
        self._since = time.perf_counter()

    def _end(self, args: CallbackArgs) -> None:
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None


_COMPILE_CLOCK: CompileClock | None = None


def compile_clock() -> CompileClock:
    """The process's one compile clock, listening to TorchDynamo."""
    global _COMPILE_CLOCK
    if _COMPILE_CLOCK is None:
        _COMPILE_CLOCK = CompileClock()
    _COMPILE_CLOCK.listen()
    return _COMPILE_CLOCK


class StepClock:
    """The duration of each training step: the forward, backward and optimizer step, nothing
    else. ``start`` and ``stop`` bracket one stretch (a step is one, or one per micro-batch when
    gradients accumulate); ``take`` hands over the step's total and starts the next one.

    On a CUDA device the stretches are bracketed by events, read only when ``seconds`` resolves
    a step's total (once per flush of the recorded rows), so timing adds no synchronisation;
    elsewhere it is ``time.perf_counter``. Compilation during a stretch is left out.
    """

    def __init__(self) -> None:
        self.cuda = False
        self.compile = compile_clock()
        self._start: Any = None
        self._compiled_before = 0.0
        self._stretches: list[Any] = []
        self._compiled = 0.0

    @property
    def running(self) -> bool:
        return self._start is not None

    def start(self) -> None:
        self.compile.listen()
        self._compiled_before = self.compile.seconds
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._start = time.perf_counter()

    def stop(self) -> None:
        """End the running stretch (a no-op when none runs)."""
        if self._start is None:
            return
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._stretches.append((self._start, end))
        else:
            self._stretches.append(time.perf_counter() - self._start)
        self._compiled += self.compile.seconds - self._compiled_before
        self._start = None

    def take(self) -> StepTime:
        """The finished step's time (resolved later) and a fresh start for the next step."""
        self.stop()
        step = StepTime(self._stretches, self._compiled)
        self._stretches, self._compiled = [], 0.0
        return step


class StepTime:
    """One step's stretches (seconds, or CUDA event pairs) less its compilation."""

    def __init__(self, stretches: list[Any], compiled: float) -> None:
        self.stretches = stretches
        self.compiled = compiled

    def seconds(self) -> float:
        total = 0.0
        for stretch in self.stretches:
            if isinstance(stretch, float):
                total += stretch
            else:
                start, end = stretch
                end.synchronize()
                total += start.elapsed_time(end) / 1000.0
        return max(total - self.compiled, 0.0)


class Stopwatch:
    """Sums the time spent inside ``with watch:`` blocks (CUDA events on a GPU, read once per
    flush, as ``StepClock``)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self._seconds = seconds
        self._events: list[tuple[Any, Any]] = []
        self._start: float | Any = 0.0
        self.cuda = False

    def __enter__(self) -> Stopwatch:
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._events.append((self._start, end))
        else:
            self._seconds += time.perf_counter() - self._start

    @property
    def seconds(self) -> float:
        """Total so far (waits for the recorded CUDA events to complete)."""
        for start, end in self._events:
            end.synchronize()
            self._seconds += start.elapsed_time(end) / 1000.0
        self._events.clear()
        return self._seconds


class RunClock:
    """Where a run's time goes, owned by its recorder from start to end: each training step's own
    duration (``step``: started after the metric's forward, stopped by the optimizer's step
    hook, so the schedule and the end-of-batch hooks stay out), and apart from it the metric's
    forward at the deployed weights, validation and test, ``torch.compile``, and the wall time.
    A resumed run carries its earlier totals on."""

    def __init__(self) -> None:
        self.step = StepClock()
        self.metric = Stopwatch()
        self.eval = Stopwatch()
        self._start = 0.0
        self._resumed_wall: float | None = None
        self._compiled_earlier = 0.0  # a resumed run's, before this process
        self._compile_start = compile_clock().seconds
        self._hook: Any = None

    @property
    def resumed(self) -> bool:
        return self._resumed_wall is not None

    def on_device(self, device: torch.device) -> None:
        self.step.cuda = self.metric.cuda = self.eval.cuda = device.type == "cuda"

    def begin(self) -> None:
        """Start the wall clock (a resumed run's continues from its checkpoint's)."""
        self._start = time.perf_counter() - (self._resumed_wall or 0.0)

    def stop_steps_with(self, opt: torch.optim.Optimizer | None) -> None:
        """End each step when ``opt`` has stepped (None: stop listening)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if opt is not None:
            self._hook = opt.register_step_post_hook(lambda *_: self.step.stop())

    def wall_time(self) -> float:
        return time.perf_counter() - self._start

    def compile_seconds(self) -> float:
        """Time this run spent in ``torch.compile`` (this process's share, plus a resumed run's
        earlier share)."""
        return self._compiled_earlier + compile_clock().seconds - self._compile_start

    def state_dict(self) -> dict[str, Any]:
        return {
            "wall_time": self.wall_time(),
            "metric_time": self.metric.seconds,
            "eval_time": self.eval.seconds,
            "compile_time": self.compile_seconds(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resumed_wall = float(state["wall_time"])
        self.metric = Stopwatch(float(state.get("metric_time", 0.0)))
        self.eval = Stopwatch(float(state.get("eval_time", 0.0)))
        self._compiled_earlier = float(state.get("compile_time", 0.0))

    def times(self, steps: int, results: RunResults) -> dict[str, Any]:
        """For meta.json: seconds per training step (``step_time_s``, the median of the steps'
        own durations in ``results``' steps.csv after a warm-up, and its interquartile range),
        the wall time, and the metric's forward, evaluation and compilation apart."""
        results.sync()
        return {
            "steps": steps,
            "wall_time_s": round(self.wall_time(), 3),
            **step_time_stats(results.dir / "steps.csv.part"),
            "metric_time_s": round(self.metric.seconds, 3),
            "eval_time_s": round(self.eval.seconds, 3),
            "compile_time_s": round(self.compile_seconds(), 3),
        }


def warmup_steps(steps: int) -> int:
    """Steps left out of the step-time statistic: the first 10 %, at most 100. The first steps
    allocate the optimizer's state and warm the allocator, dispatcher and caches."""
    return min(100, steps // 10)


def step_time_stats(steps_csv: Path) -> dict[str, Any]:
    """Seconds per training step of a run, from its ``steps.csv``: the median over the steps
    after the warm-up, and the interquartile range as its spread.

    The median, not the mean: a step of these optimizers costs the same at every step, while a
    shared machine slows whole stretches of steps by tens of percent and a few steps do one-off
    work; the median is the cost of a step and moves least with either.
    """
    if not steps_csv.is_file():
        return {"step_time_s": None, "step_time_iqr_s": None, "step_time_warmup": 0}
    with open(steps_csv, newline="") as f:
        times = [float(r["step_time"]) for r in csv.DictReader(f) if r.get("step_time")]
    warmup = warmup_steps(len(times))
    kept = [t for t in times[warmup:] if math.isfinite(t)]
    if not kept:
        return {"step_time_s": None, "step_time_iqr_s": None, "step_time_warmup": warmup}
    q1, _, q3 = statistics.quantiles(kept, n=4) if len(kept) > 1 else (kept[0],) * 3
    return {
        "step_time_s": round(statistics.median(kept), 9),
        "step_time_iqr_s": round(q3 - q1, 9),
        "step_time_warmup": warmup,
    }
