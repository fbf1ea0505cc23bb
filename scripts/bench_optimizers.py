"""Per-step time and state memory of SGDO / AdamO against their torch counterparts.

Both optimizers of a pair step the same parameter shapes with the same gradients, interleaved
step by step so machine noise hits both alike; the median over the timed steps is reported as a
ratio measured in the same run. SGDO and AdamO move the same memory as Nesterov and AdamW, so
1.0 is the physical limit.

    python scripts/bench_optimizers.py [--steps 200] [--warmup 20] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

import torch
import torchvision

from overshoot import SGDO, AdamO

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]

PAIRS: dict[str, tuple[Factory, Factory]] = {
    "SGDO / SGD(nesterov)": (
        lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, nesterov=True, foreach=True),
        lambda ps: SGDO(ps, lr=1e-3, momentum=0.9, overshoot=5.0, foreach=True),
    ),
    "AdamO / AdamW": (
        lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True),
        lambda ps: AdamO(ps, lr=1e-3, overshoot=5.0, overshoot_delay=0, foreach=True),
    ),
}


def shapes(model: str) -> list[torch.Size]:
    if model == "resnet18":
        return [p.shape for p in torchvision.models.resnet18(num_classes=1000).parameters()]
    sizes = [784, 128, 64, 10]
    out: list[torch.Size] = []
    for a, b in itertools.pairwise(sizes):
        out += [torch.Size([b, a]), torch.Size([b])]
    return out


def state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(v.nbytes for s in opt.state.values() for v in s.values() if torch.is_tensor(v))


def bench_pair(
    model: str, base: Factory, ours: Factory, steps: int, warmup: int, device: str
) -> tuple[float, float, int, int]:
    gen = torch.Generator(device=device).manual_seed(0)
    runs: list[tuple[torch.optim.Optimizer, list[float]]] = []
    for factory in (base, ours):
        params = [torch.randn(s, device=device, generator=gen) for s in shapes(model)]
        for p in params:
            p.grad = torch.randn(p.shape, device=device, generator=gen) * 1e-3
        runs.append((factory(params), []))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for i in range(warmup + steps):
        for opt, times in runs:
            sync()
            start = time.perf_counter()
            opt.step()
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    (b_opt, b_t), (o_opt, o_t) = runs
    return statistics.median(b_t), statistics.median(o_t), state_bytes(b_opt), state_bytes(o_opt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    print(f"median of {args.steps} steps after {args.warmup} warm-up, foreach=True")
    cols = ("torch ms", "ours ms", "time ratio", "state ratio")
    print(f"{'pair':22} {'shapes':9} " + " ".join(f"{c:>11}" for c in cols))
    for model in ("mlp", "resnet18"):
        for name, (base, ours) in PAIRS.items():
            tb, to, sb, so = bench_pair(model, base, ours, args.steps, args.warmup, args.device)
            values = (tb * 1e3, to * 1e3, to / tb, so / sb)
            print(f"{name:22} {model:9} " + " ".join(f"{v:11.3f}" for v in values))


if __name__ == "__main__":
    main()
