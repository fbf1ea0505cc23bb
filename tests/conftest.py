"""The suite runs on two pytest workers (pytest-xdist, ``make test``), one per core: each worker,
and every process it starts, computes on one thread, since two processes of two threads each on
two cores slow torch several times over."""

from __future__ import annotations

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by main.py subprocesses and DDP ranks
    torch.set_num_threads(1)
