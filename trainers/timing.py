"""Time inside a run: each training step's own duration, compilation counted apart, and the
accumulated time of recurring work (the metric's forward, evaluation), without a host sync per
step on a GPU."""

from __future__ import annotations

import csv
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch._dynamo.callback import CallbackArgs, callback_handler


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
