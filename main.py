"""Benchmark harness entry point: reference-style flags or Hydra overrides, or both.

    python main.py                                             # embedded default, no download
    python main.py --model mlp --dataset housing --opt_name sgd_overshoot --overshoot_factor 0.9
    python main.py task=mlp_housing optimizer=adamo optimizer.overshoot=5 seed=3
    python main.py -m task=mlp_housing optimizer=sgd_momentum,sgdo seed='range(3)'

Reference flags are translated into Hydra overrides in ``translate`` (one place); everything
else goes to Hydra unchanged. Bad names and values exit with status 2 and one line saying what
is valid.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import OmegaConf

from data.root import DataNotFoundError
from trainers.checks import PRECISIONS, validate

CONFIGS = Path(__file__).resolve().parent / "configs"

REFERENCE_OPTIMIZERS = {
    "sgd": "sgd",
    "sgd_momentum": "sgd_momentum",
    "sgd_nesterov": "sgd_nesterov",
    "sgd_overshoot": "sgdo",
    "adam": "adam",
    "adamW": "adamw",
    "nadam": "nadam",
    "adamW_overshoot_delayed": "adamo",
    "adamW_overshoot_replication": "adamw_overshoot_replication",
    "rmsprop": "rmsprop",
}
REFERENCE_MODELS = [
    "mlp",
    "2c2d",
    "3c3d",
    "resnet18",
    "resnet50",
    "vae",
    "gpt",
    "gpt_tiny",
    "gpt_hf",
]
REFERENCE_DATASETS = [
    "mnist",
    "fmnist",
    "cifar10",
    "cifar100",
    "housing",
    "energy",
    "shakespear",
    "shakespeare",
    "qqp",
    "sst",
    "mnli",
    "diabetes",
]
DATASET_ALIASES = {"shakespear": "shakespeare"}

# --config_override key -> (Hydra key, type); "{family}" is the chosen optimizer's family.
OVERRIDE_KEYS: dict[str, tuple[str, type]] = {
    "precision": ("precision", str),
    "max_steps": ("max_steps", int),
    "lr": ("task.{family}.lr", float),
    "B": ("task.{family}.batch_size", int),
    "epochs": ("task.epochs", int),
    "use_lr_scheduler": ("task.cosine", bool),
    "sgd_momentum": ("task.sgd.momentum", float),
    "adam_beta1": ("task.adam.beta1", float),
    "adam_beta2": ("task.adam.beta2", float),
    "epsilon": ("task.adam.eps", float),
    "weight_decay_sgd": ("task.sgd.weight_decay", float),
    "weight_decay_adam": ("task.adam.weight_decay", float),
    "grad_clip": ("trainer.gradient_clip_val", float),
    "overshoot_delay": ("optimizer.factory.overshoot_delay", int),
}
# The reference's "default" precision is this harness's "auto"; the rest are the harness's own.
REFERENCE_PRECISIONS = {"default": "auto"}


class UsageError(ValueError):
    """Bad command-line input; reported as one line with exit status 2."""


class JobFailed(CompactHydraException):
    """A job of a multirun that could not run (e.g. its data is missing): the others go on,
    and Hydra reports it at the end in one line (compact: no traceback)."""


def fail(message: str) -> NoReturn:
    print(f"main.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def describe(group: str, name: str) -> str:
    """The config's first line, a comment that says in one line what it is."""
    first = (CONFIGS / group / f"{name}.yaml").read_text().split("\n", 1)[0]
    return first.removeprefix("#").strip()


def list_optimizers() -> str:
    aliases = {cfg: ref for ref, cfg in REFERENCE_OPTIMIZERS.items() if ref != cfg}
    names = choices("optimizer")
    width = max(len(n) for n in names)
    lines = []
    for name in names:
        alias = f" [--opt_name {aliases[name]}]" if name in aliases else ""
        config = OmegaConf.load(CONFIGS / "optimizer" / f"{name}.yaml")
        vectorizes = " [vectorize=true]" if OmegaConf.select(config, "vectorizes") else ""
        lines.append(f"{name:<{width}}  {describe('optimizer', name)}{alias}{vectorizes}")
    return "\n".join(lines)


def _typed(key: str, raw: str, kind: type) -> str:
    if kind is bool:
        if raw.lower() not in ("true", "false", "1", "0"):
            raise UsageError(f"--config_override {key}={raw}: expected true or false")
        return "true" if raw.lower() in ("true", "1") else "false"
    try:
        kind(raw)
    except ValueError:
        raise UsageError(f"--config_override {key}={raw}: expected a {kind.__name__}") from None
    if key == "precision":
        valid = [*PRECISIONS, *REFERENCE_PRECISIONS]
        if raw not in valid:
            raise UsageError(
                f"--config_override precision={raw}: valid values are {', '.join(valid)}"
            )
        return REFERENCE_PRECISIONS.get(raw, raw)
    return raw


def reference_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py",
        description="Overshoot benchmark harness. Reference flags below; any other argument is "
        "a Hydra override (key=value, -m for multirun). Tasks: "
        + ", ".join(choices("task"))
        + ". Optimizers: "
        + ", ".join(choices("optimizer"))
        + " (--list-optimizers says what each is).",
    )
    p.add_argument(
        "--list-optimizers", action="store_true", help="list every optimizer with one line each"
    )
    p.add_argument("--model", help=f"one of {', '.join(REFERENCE_MODELS)}")
    p.add_argument("--dataset", help=f"one of {', '.join(REFERENCE_DATASETS)}")
    p.add_argument(
        "--opt_name",
        help=f"reference names {', '.join(REFERENCE_OPTIMIZERS)} or any optimizer config",
    )
    p.add_argument("--two_models", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--overshoot_factor", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--config_override",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help=f"keys: {', '.join(OVERRIDE_KEYS)}",
    )
    p.add_argument("--experiment_name")
    p.add_argument("--job_name")
    p.add_argument("--compute_base_model_loss", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--compute_cosine",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the reference's cosine-similarity logging: not computed here, so only --no- is valid",
    )
    return p


def translate(args: argparse.Namespace) -> list[str]:
    """Reference flags → Hydra overrides."""
    out: list[str] = []
    if args.compute_cosine:
        raise UsageError(
            "--compute_cosine: cosine similarities are not computed here; "
            "drop the flag or pass --no-compute_cosine"
        )
    if (args.model is None) != (args.dataset is None):
        raise UsageError("--model and --dataset go together")
    if args.model is not None:
        if args.model not in REFERENCE_MODELS:
            raise UsageError(f"unknown model {args.model!r}; valid: {', '.join(REFERENCE_MODELS)}")
        if args.dataset not in REFERENCE_DATASETS:
            raise UsageError(
                f"unknown dataset {args.dataset!r}; valid: {', '.join(REFERENCE_DATASETS)}"
            )
        task = f"{args.model}_{DATASET_ALIASES.get(args.dataset, args.dataset)}"
        if task not in choices("task"):
            raise UsageError(
                f"no task for --model {args.model} --dataset {args.dataset}; "
                f"configured tasks: {', '.join(choices('task'))}"
            )
        out.append(f"task={task}")
    optimizer = "sgdo"
    if args.opt_name is not None:
        optimizer = REFERENCE_OPTIMIZERS.get(args.opt_name, args.opt_name)
        if optimizer not in choices("optimizer"):
            valid = sorted(set(REFERENCE_OPTIMIZERS) | set(choices("optimizer")))
            raise UsageError(f"unknown optimizer {args.opt_name!r}; valid: {', '.join(valid)}")
        out.append(f"optimizer={optimizer}")
    if args.two_models is not None:
        out.append(f"two_models={str(args.two_models).lower()}")
    if args.overshoot_factor is not None:
        if args.overshoot_factor < 0:
            raise UsageError(f"--overshoot_factor {args.overshoot_factor}: must be >= 0")
        out.append(f"optimizer.overshoot={args.overshoot_factor}")
    for flag in ("seed", "experiment_name", "job_name"):
        if getattr(args, flag) is not None:
            out.append(f"{flag}={getattr(args, flag)}")
    if args.compute_base_model_loss is not None:
        out.append(f"compute_base_model_loss={str(args.compute_base_model_loss).lower()}")
    family = _family(optimizer)
    for item in args.config_override:
        key, sep, raw = item.partition("=")
        if not sep or key not in OVERRIDE_KEYS:
            raise UsageError(
                f"--config_override {item!r}: expected KEY=VALUE with KEY one of "
                f"{', '.join(OVERRIDE_KEYS)}"
            )
        target, kind = OVERRIDE_KEYS[key]
        out.append(f"{target.format(family=family)}={_typed(key, raw, kind)}")
    return out


def _family(optimizer: str) -> str:
    return str(OmegaConf.load(CONFIGS / "optimizer" / f"{optimizer}.yaml").family)


# Keys of earlier versions: a command that still uses one is told what replaced it.
RENAMED = {
    "fused": "kernels=fused|foreach|single (fused=true was kernels=fused, fused=false "
    "kernels=foreach)",
}


def check_group_choices(overrides: list[str]) -> None:
    """Validate ``group=a,b`` choices before Hydra, so a typo fails fast with the valid names."""
    for item in overrides:
        key, sep, value = item.partition("=")
        group = key.lstrip("+~")
        if sep and group in RENAMED:
            raise UsageError(f"{item}: the key is now {RENAMED[group]}")
        if sep and group in ("task", "optimizer", "trainer", "experiment", "hparams"):
            for name in value.split(","):
                if name not in choices(group):
                    raise UsageError(
                        f"unknown {group} {name!r}; valid: {', '.join(choices(group))}"
                    )


def check_composes(args: list[str]) -> None:
    """Compose the run's config before Hydra runs it, so a bad key, value or type is one line,
    exit 2, and nothing is written.

    A multirun is checked by composing each swept value once (the other keys at their first
    value), the experiment's own sweep included: linear in the values, not their product.
    """
    overrides = [a for a in args if a.startswith("~") or ("=" in a and not a.startswith("-"))]
    multirun = any(a in ("-m", "--multirun") for a in args)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        if not multirun:
            compose_checked(overrides, data_needed=True)
            return
        variants = sweep_variants(overrides, {})
        if variants is None:
            return  # a sweep Hydra's sweeper samples (e.g. Optuna intervals): left to it
        cfg = compose_checked(variants[0])
        params = OmegaConf.select(cfg, "hydra.sweeper.params")
        # An experiment's own sweep joins the command line's; else the first is checked already.
        rest = sweep_variants(overrides, dict(params)) if params else variants[1:]
        for variant in rest or []:
            compose_checked(variant)


def compose_checked(overrides: list[str], data_needed: bool = False) -> Any:
    """The composed config (Hydra keys included), validated as ``train`` validates it, or a
    one-line UsageError saying what is wrong. Missing data refuses a single run
    (``data_needed``); in a multirun only the jobs that need it fail, and the others run."""

    try:
        cfg = compose("config", overrides, return_hydra_config=True)
    except Exception as e:  # Hydra/OmegaConf raise many types; all are bad input here
        lines = [
            str(x).strip().splitlines()[0].rstrip(".")
            for x in (e, e.__cause__)
            if x and str(x).strip()
        ]
        raise UsageError(
            f"{': '.join(lines) or type(e).__name__} (KEY=VALUE sets an existing key, "
            "+KEY=VALUE adds one; python main.py --cfg job lists them)"
        ) from None
    try:
        validate(cfg)
    except DataNotFoundError as e:
        if data_needed:
            raise UsageError(str(e).splitlines()[0]) from None
    except ValueError as e:
        raise UsageError(str(e).splitlines()[0]) from None
    return cfg


def sweep_variants(overrides: list[str], sweep: dict[str, Any]) -> list[list[str]] | None:
    """Override lists that together try every swept value once: the first holds every key's
    first value, each other one changes one key. ``sweep`` adds a config's own sweep (the
    command line wins on a shared key). None when a sweep cannot be listed."""
    given = {o.partition("=")[0].lstrip("+~") for o in overrides}
    extra = [f"{k}={v}" for k, v in sweep.items() if k not in given]
    options: list[list[str]] = []
    for override in OverridesParser.create().parse_overrides([*extra, *overrides]):
        if not override.is_sweep_override():
            assert override.input_line is not None  # parsed from text
            options.append([override.input_line])
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception:  # interval and other sampled sweeps have no list of values
            return None
        options.append([f"{override.get_key_element()}={v}" for v in values])
    first = [choices[0] for choices in options]
    changed = [
        [*first[:i], choice, *first[i + 1 :]]
        for i, choices in enumerate(options)
        for choice in choices[1:]
    ]
    return [first, *changed]


MEMBER_KEYS = {"seed": "members.seed", "optimizer.overshoot": "members.overshoot"}


def vectorized(args: list[str]) -> list[str]:
    """With ``vectorize=true`` in a multirun, the seeds and γ that the sweep lists (the command
    line's, else the experiment's) become the members of each job (``members.seed``,
    ``members.overshoot``): Hydra launches one job per configuration, not one per seed and γ.
    A command that does not compose is returned as it is, for ``check_composes`` to report."""
    multirun = any(a in ("-m", "--multirun") for a in args)
    if not multirun or not any(a.lower() == "vectorize=true" for a in args):
        return args
    overrides = [a for a in args if a.startswith("~") or ("=" in a and not a.startswith("-"))]
    given = {a.partition("=")[0]: a.partition("=")[2] for a in overrides}
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            variants = sweep_variants(overrides, {})
            cfg = compose("config", variants[0] if variants else [], return_hydra_config=True)
    except Exception:
        return args
    sweep = dict(OmegaConf.select(cfg, "hydra.sweeper.params") or {})
    out = [a for a in args if a.partition("=")[0] not in MEMBER_KEYS]
    for key, member_key in MEMBER_KEYS.items():
        raw = given.get(key, sweep.get(key))
        if raw is None or member_key in given:  # members given outright stay as given
            continue
        (override,) = OverridesParser.create().parse_overrides([f"{key}={raw}"])
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        out += [f"{key}={values[0]}", f"{member_key}=[{','.join(values)}]"]
    return out


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate reference flags from Hydra arguments (overrides, -m, --cfg, ...)."""
    parser = reference_parser()
    args, rest = parser.parse_known_args(argv)
    return translate(args), rest


def checked_args(argv: list[str]) -> list[str]:
    """Hydra's arguments for ``argv`` (reference flags translated, vectorized sweeps rewritten),
    checked as a run would be; a UsageError names the first bad one."""
    overrides, rest = split_argv(argv)
    check_group_choices(overrides + rest)
    args = vectorized(overrides + rest)
    check_composes(args)
    return args


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
    from trainers.ddp import process_rank  # Lightning: loaded once the run starts
    from trainers.train import Interrupted, train

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
    lines = [f"status: {summary['status']} after {summary['steps']} steps"]
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
