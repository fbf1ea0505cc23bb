"""The command line, before Hydra runs a job: the reference implementation's flags
(``--model --dataset --opt_name ...``) translated once into Hydra overrides, and the config groups
the command offers (``choices``). ``checks.py`` validates a composed config; ``sweeps.py`` checks
what a command sweeps, groups vectorized members, and summarizes a multirun at its end."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from omegaconf import OmegaConf

from trainers.cli.checks import PRECISIONS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

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
# Hydra's own long flags, which pass through to it (python main.py --hydra-help lists them).
HYDRA_FLAGS = frozenset(
    {
        "--multirun",
        "--cfg",
        "--package",
        "--run",
        "--config-path",
        "--config-name",
        "--config-dir",
        "--info",
        "--resolve",
        "--shell-completion",
        "--experimental-rerun",
        "--hydra-help",
        "--version",
    }
)
# The reference's "default" precision is this harness's "auto"; the rest are the harness's own.
REFERENCE_PRECISIONS = {"default": "auto"}


class UsageError(ValueError):
    """Bad command-line input; reported as one line with exit status 2."""


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def first_line(group: str, name: str) -> str:
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
        lines.append(f"{name:<{width}}  {first_line('optimizer', name)}{alias}{vectorizes}")
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
        allow_abbrev=False,  # --opt would silently be --opt_name
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


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate reference flags from Hydra arguments (overrides, -m, --cfg, ...)."""
    parser = reference_parser()
    args, rest = parser.parse_known_args(argv)
    for arg in rest:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and flag not in HYDRA_FLAGS:
            known = sorted(parser._option_string_actions.keys() - {"-h"}) + sorted(HYDRA_FLAGS)
            near = difflib.get_close_matches(flag, known, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise UsageError(f"unknown flag {flag}: {hint}valid: {', '.join(known)}")
    return translate(args), rest
