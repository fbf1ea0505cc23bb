"""Per-step time and state memory of SGDO / AdamO against torch's Nesterov SGD / AdamW.

Each family steps four optimizers on copies of the same parameter shapes with the same gradients:
torch's foreach and fused paths and ours. They step in turn, step after step, so machine noise
hits all alike, and each ratio is ours / torch on the same path, measured in this run. SGDO and
AdamO move the same memory as Nesterov and AdamW, so 1.0 is the physical limit. Targets on a
CPU: SGDO fused / SGD fused ≤ 1.10, AdamO fused / AdamW fused ≤ 1.15, state bytes equal.

    python scripts/bench_optimizers.py [--models mlp,resnet18,gpt2] [--device cpu|cuda]
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
PATHS = ({"foreach": True}, {"fused": True})

FAMILIES: dict[str, tuple[Factory, Factory]] = {
    "SGDO / SGD(nesterov)": (
        lambda ps, **kw: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, nesterov=True, **kw),
        lambda ps, **kw: SGDO(ps, lr=1e-3, momentum=0.9, overshoot=5.0, **kw),
    ),
    "AdamO / AdamW": (
        lambda ps, **kw: torch.optim.AdamW(ps, lr=1e-3, **kw),
        lambda ps, **kw: AdamO(ps, lr=1e-3, overshoot=5.0, overshoot_delay=0, **kw),
    ),
}
# (timed steps, warm-up steps) per model on the CPU; the GPU takes --steps for all
STEPS = {"mlp": (300, 20), "resnet18": (60, 10), "gpt2": (8, 3)}


def shapes(model: str) -> list[torch.Size]:
    if model == "resnet18":
        return [p.shape for p in torchvision.models.resnet18(num_classes=1000).parameters()]
    if model == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        with torch.device("meta"):
            return [p.shape for p in GPT2LMHeadModel(GPT2Config()).parameters()]
    sizes = [784, 128, 64, 10]
    out: list[torch.Size] = []
    for a, b in itertools.pairwise(sizes):
        out += [torch.Size([b, a]), torch.Size([b])]
    return out


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Tensor state larger than a scalar (torch's fused paths keep 0-d step tensors)."""
    return sum(
        v.nbytes for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.ndim
    )


def bench_family(
    model: str, torch_f: Factory, ours_f: Factory, steps: int, warmup: int, device: str
) -> dict[str, tuple[float, int]]:
    """Median seconds per step and state bytes of torch and ours on each path."""
    gen = torch.Generator(device=device).manual_seed(0)
    grads = [torch.randn(s, device=device, generator=gen) * 1e-3 for s in shapes(model)]
    opts: dict[str, torch.optim.Optimizer] = {}
    for path, (who, factory) in itertools.product(PATHS, (("torch", torch_f), ("ours", ours_f))):
        params = [torch.randn(g.shape, device=device, generator=gen) for g in grads]
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opts[f"{who} {next(iter(path))}"] = factory(params, **path)
    times: dict[str, list[float]] = {k: [] for k in opts}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for i in range(warmup + steps):
        for name, opt in opts.items():
            sync()
            start = time.perf_counter()
            opt.step()
            sync()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {k: (statistics.median(times[k]), state_bytes(o)) for k, o in opts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,resnet18,gpt2")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=100, help="timed steps on a GPU")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    print("median ms per step; ratio = ours / torch on the same path")
    head = ("torch foreach", "ours foreach", "ratio", "torch fused", "ours fused", "ratio")
    print(f"{'family':21} {'shapes':9} " + " ".join(f"{c:>13}" for c in head) + "  state ratio")
    for model in args.models.split(","):
        steps, warmup = STEPS[model] if args.device == "cpu" else (args.steps, 10)
        for name, (torch_f, ours_f) in FAMILIES.items():
            r = bench_family(model, torch_f, ours_f, steps, warmup, args.device)
            cells = []
            for path in ("foreach", "fused"):
                t, o = r[f"torch {path}"][0], r[f"ours {path}"][0]
                cells += [f"{t * 1e3:13.3f}", f"{o * 1e3:13.3f}", f"{o / t:13.3f}"]
            state = r["ours fused"][1] / r["torch fused"][1]
            print(f"{name:21} {model:9} " + " ".join(cells) + f"  {state:11.3f}")


if __name__ == "__main__":
    main()
