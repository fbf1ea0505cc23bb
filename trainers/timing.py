"""Accumulated time of recurring work inside a run, without a host sync each time."""

from __future__ import annotations

import time
from typing import Any

import torch


class Stopwatch:
    """Sums the time spent inside ``with watch:`` blocks.

    On a CUDA device the blocks are bracketed by events and read only when ``seconds`` is asked
    for (once per flush), so timing adds no synchronisation to the step; elsewhere it is
    ``time.perf_counter``.
    """

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
