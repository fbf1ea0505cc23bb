"""How a run computes: its kernels, device, CPU threads and whether it ran as a vectorized
member. A float32 result depends on all of them (each sets an order of summation, and over tens
of thousands of steps that moves a crossing as far as a change of seed), so a finished float32
run counts as done only for a run that would compute it the same way; float64 runs do not
depend on them."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from trainers.checks import on_cpu
from trainers.optim import optimizer_factory, resolved_kernels

COMPUTE_KEYS = ("kernels", "device_type", "device_name", "cpu_threads", "vectorized")


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's vector instruction set (which picks torch's CPU kernels)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {torch.backends.cpu.get_cpu_capability()}"


def compute_of(
    kernels: str | None, device: torch.device, threads: int, vectorized: bool
) -> dict[str, Any]:
    """The fields of ``meta.json`` that say how a run computed (threads only count on a CPU)."""
    return {
        "kernels": kernels,
        "device_type": device.type,
        "device_name": device_name(device),
        "cpu_threads": threads,
        "vectorized": vectorized,
    }


def planned_compute(cfg: DictConfig) -> dict[str, Any]:
    """How ``cfg`` would compute in this process."""
    device = torch.device("cpu") if on_cpu(cfg) else torch.device("cuda", 0)
    opt = optimizer_factory(cfg)([torch.nn.Parameter(torch.zeros(1))])
    return compute_of(resolved_kernels(opt), device, torch.get_num_threads(), bool(cfg.vectorize))


def describe(compute: dict[str, Any]) -> str:
    """E.g. ``kernels=fused on CPU AVX512, 2 threads``."""
    kernels = compute.get("kernels") or "unrecorded"
    where = compute.get("device_name") or compute.get("device_type") or "an unrecorded device"
    if compute.get("device_type") == "cpu":
        where += f", {compute.get('cpu_threads')} threads"
    member = ", as a vectorized member" if compute.get("vectorized") else ""
    return f"kernels={kernels} on {where}{member}"


def compute_change(meta: dict[str, Any], planned: dict[str, Any]) -> str | None:
    """How the run recorded in ``meta`` computed differently from ``planned``, or None."""
    recorded = {**dict.fromkeys(COMPUTE_KEYS), **meta}
    recorded["vectorized"] = meta.get("vectorized", "members" in meta)
    keys = [k for k in COMPUTE_KEYS if k != "cpu_threads" or planned["device_type"] == "cpu"]
    if all(recorded[k] == planned[k] for k in keys):
        return None
    return f"computed with {describe(recorded)}; this run would use {describe(planned)}"
