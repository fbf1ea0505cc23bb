"""Benchmark harness entry point: reference-style flags or Hydra overrides, or both.

    python main.py                                             # embedded default, no download
    python main.py --model mlp --dataset housing --opt_name sgd_overshoot --overshoot_factor 0.9
    python main.py task=mlp_housing optimizer=adamo optimizer.overshoot=5 seed=3
    python main.py -m task=mlp_housing optimizer=sgd_momentum,sgdo seed='range(3)'

The command line becomes Hydra's arguments in ``checked_args``: reference flags translated
(trainers/cli/__init__.py), the sweep checked and, with ``vectorize=true``, grouped into
members (trainers/cli/sweeps.py); then Hydra calls ``train`` (trainers/train.py) per job. Bad names
and values exit with status 2 and one line saying what is valid.
"""

from __future__ import annotations

import os
import signal
import sys

if __name__ == "__main__":  # Ctrl-C while starting up (imports, checks): one line, status 130

    def _interrupted_starting(*_: object) -> None:
        print("main.py: interrupted while starting; nothing was written", file=sys.stderr)
        os._exit(130)

    signal.signal(signal.SIGINT, _interrupted_starting)
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode

from data import DataNotFoundError
from trainers.cli import (
    CONFIGS,
    UsageError,
    list_optimizers,
    reference_parser,
    split_argv,
)
from trainers.cli.sweeps import check_composes, check_group_choices, vectorized


class JobFailed(CompactHydraException):
    """A job of a multirun that could not run (e.g. its data is missing): the others go on,
    and Hydra reports it at the end in one line (compact: no traceback)."""


def fail(message: str) -> NoReturn:
    print(f"main.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def checked_args(argv: list[str]) -> list[str]:
    """Hydra's arguments for ``argv`` (reference flags translated, vectorized sweeps rewritten),
    checked as a run would be; a UsageError names the first bad one."""
    overrides, rest = split_argv(argv)
    check_group_choices(overrides + rest)
    args = seeds_first(vectorized(overrides + rest))
    check_composes(args)
    return args


def seeds_first(args: list[str]) -> list[str]:
    """A swept ``seed`` moved before the other overrides: Hydra's sweep varies the last key
    fastest, so each seed's optimizers then run back to back, whatever order the command gave,
    and a shared machine's drift falls on a seed's pair alike, not on one optimizer."""
    at = [i for i, a in enumerate(args) if "=" in a and not a.startswith("-")]
    overrides = [args[i] for i in at]
    seed = [a for a in overrides if a.startswith("seed=")]
    out = list(args)  # flags (-m, --cfg job, ...) keep their places; overrides are reordered
    for i, a in zip(at, seed + [a for a in overrides if a not in seed], strict=True):
        out[i] = a
    return out


def main() -> None:
    argv = sys.argv[1:]
    if any(a in ("-h", "--help") for a in argv):
        reference_parser().print_help()
        print("\nHydra: python main.py --hydra-help")
        return
    if "--list-optimizers" in argv:
        print(list_optimizers())
        return
    try:
        args = checked_args(argv)
    except UsageError as e:
        fail(str(e))
    sys.argv = [sys.argv[0], *args]
    export_harness_path()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a run stops as it documents
    hydra_main()


def export_harness_path() -> None:
    """Put the harness on PYTHONPATH for launched jobs: submitit (hydra/launcher=slurm, and
    submitit_local) unpickles each run in a fresh interpreter started in the caller's folder,
    which imports ``data`` or ``trainers`` only if that folder is this clone."""
    root = str(CONFIGS.parent)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])


def _run(cfg: Any) -> float | None:
    from trainers.fit import Interrupted
    from trainers.fit.trainer import process_rank  # Lightning: loaded once the run starts
    from trainers.train import train

    try:
        summary = train(cfg)
    except (DataNotFoundError, ValueError) as e:
        message = str(e).splitlines()[0]
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise JobFailed(message) from None  # Hydra runs the other jobs, then reports it
        fail(message)
    except Interrupted as e:
        print(e, file=sys.stderr)
        sys.exit(130)
    if process_rank() == 0:  # DDP: the other processes stay quiet
        print_summary(summary)
    loss = summary.get("test/loss")
    return float(loss) if loss is not None else None


def print_summary(summary: dict[str, Any]) -> None:
    resumed = summary.get("resumed_at_steps")
    at = f", resumed at step {', '.join(map(str, resumed))}" if resumed else ""
    lines = [f"status: {summary['status']} after {summary['steps']} steps{at}"]
    if "members" in summary:  # a vectorized job: one line per member
        for member in summary["members"]:
            loss = member.get("test/loss")
            test = f"test/loss {loss:.6g}  " if loss is not None else ""
            lines.append(f"  {member['status']:<10} {test}{member['results']}")
        print("\n".join(lines))
        return
    for key in ("val/loss", "test/loss", "test/accuracy"):
        if key in summary:
            lines.append(f"{key} at base weights: {summary[key]:.6g}")
    lines.append(f"results: {summary['results']}")
    logs = summary["logs"]
    if not logs:
        lines.append("logs:    off (~logger)")
    elif any(Path(logs).glob("events.out.tfevents.*")):
        lines.append(f"logs:    {logs}  (tensorboard --logdir lightning_logs)")
    else:
        lines.append(f"logs:    {logs}")
    print("\n".join(lines))


def hydra_main() -> None:
    hydra.main(config_path=str(CONFIGS), config_name="config", version_base="1.3")(_run)()


if __name__ == "__main__":
    main()
