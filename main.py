"""Benchmark harness entry point.

The Hydra/Lightning harness (``--model/--dataset/--opt_name``, multirun sweeps, TensorBoard,
per-step results) is the next milestone (issue #4). Until it lands, this runs the optimizer demo:
the same MLP trained with AdamW and AdamO on MNIST-shaped synthetic data, evaluated at base weights.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from overshoot import AdamO


def demo(steps: int = 300, seed: int = 0) -> dict[str, float]:
    """Train one MLP per optimizer on the same data; return the held-out loss at base weights."""
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(784, 10, generator=gen)
    x = torch.rand(4096, 784, generator=gen)
    y = (x @ teacher).argmax(dim=1)
    results = {}
    for name in ("AdamW", "AdamO"):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
        )
        if name == "AdamW":
            opt: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        else:
            opt = AdamO(model.parameters(), lr=1e-3, overshoot=5.0)
        for t in range(steps):
            i = (t * 64) % 3072
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
        if isinstance(opt, AdamO):
            opt.move_to_base()
        with torch.no_grad():
            results[name] = nn.functional.cross_entropy(model(x[3072:]), y[3072:]).item()
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(f"main.py: arguments {sys.argv[1:]} are not accepted yet; the harness is issue #4")
    for name, loss in demo().items():
        print(f"{name}: held-out loss at base weights after 300 steps = {loss:.4f}")
    print("The full benchmark harness (Hydra configs, Lightning, TensorBoard) is coming next.")
