"""The one validation pass over a composed config: main.py runs it on every configuration of a
command before Hydra starts, and ``make_plan`` on its own; cheap, with nothing heavy imported
before the cheap checks, and never Lightning."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from data import check_present

FAMILIES = ("sgd", "adam")  # every task config holds both hyperparameter sets
# The run's ``precision``: "auto" is bf16-mixed on a CUDA GPU with bf16, else float32;
# "high" is float64 (bit-reproducible); the others are Lightning's.
PRECISIONS = (
    *("high", "auto", "64-true", "32-true"),
    *("16-mixed", "bf16-mixed", "16-true", "bf16-true"),
)
# On/off keys of the run: OmegaConf takes ``force=nope`` as text, which would read as on.
SWITCHES = (
    *("vectorize", "two_models", "compute_base_model_loss", "force", "any_compute"),
    *("lr_in_label", "data.download"),
)
KERNELS = ("fused", "foreach", "single")  # trainers.fit.fastest says what each is


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate(cfg: DictConfig) -> None:
    """Raise ValueError naming the first bad setting and what is valid, or DataNotFoundError
    naming the missing file; the checks that need no torch come first."""
    check_types(cfg)
    check_present(cfg.task.data, cfg.data.root, bool(cfg.data.download))
    check_trainer(cfg)
    check_optimizer(cfg)
    if cfg.get("vectorize"):
        check_vectorizes(cfg)
    else:
        check_no_members(cfg)


ONE_RUN_KEYS = {  # each members key, and the key that sets it for one run
    "seed": "seed=<s>",
    "overshoot": "optimizer.overshoot=<γ>",
    **{f"lr.{family}": f"task.{family}.lr=<rate>" for family in FAMILIES},
    "lr_scale": "task.<family>.lr=<rate>",
}


def check_no_members(cfg: DictConfig) -> None:
    """A single run trains no members: a ``members.*`` list given without ``vectorize=true``
    would otherwise be ignored, and the run silently be one of them."""
    for key, single in ONE_RUN_KEYS.items():
        values = OmegaConf.select(cfg, f"members.{key}")
        if values is not None:
            raise ValueError(
                f"members.{key}={list(values)!r}: members train only as one job; pass "
                f"vectorize=true, or one run's value as {single}"
            )


def check_types(cfg: DictConfig) -> None:
    """Refuse hyperparameters of the wrong type: Hydra reads ``task.sgd.lr=abc`` as text."""
    for family in FAMILIES:  # both, whichever runs: a sweep checks each value once
        for key, value in cfg.task[family].items():
            if not _is_number(value):
                raise ValueError(f"task.{family}.{key}={value!r}: expected a number")
        if cfg.task[family].lr < 0:  # torch would say "Invalid learning rate", naming no key
            raise ValueError(f"task.{family}.lr={cfg.task[family].lr!r}: expected a number >= 0")
        batch = cfg.task[family].batch_size
        if not isinstance(batch, int) or batch <= 0:
            raise ValueError(f"task.{family}.batch_size={batch!r}: expected a positive integer")
    hparams = cfg.get("hparams", {}).get("name", "current")
    if hparams != "current" and cfg.task.get("hparams") != hparams:
        raise ValueError(
            f"task {cfg.task.name} has no {hparams} settings "
            f"(configs/task_hparams/{hparams}/{cfg.task.name}.yaml); use hparams=current"
        )
    steps = OmegaConf.select(cfg, "budget.steps")
    if steps is not None and cfg.task.name not in steps and cfg.max_steps is None:
        raise ValueError(
            f"budget={cfg.budget.name} has no step budget for task {cfg.task.name} (it has "
            f"{', '.join(steps)}); use budget=paper or max_steps=N"
        )
    gamma = cfg.optimizer.overshoot
    if not _is_number(gamma) or gamma < 0:
        raise ValueError(f"optimizer.overshoot={gamma!r}: expected a number >= 0")
    if cfg.max_steps is not None and (not isinstance(cfg.max_steps, int) or cfg.max_steps <= 0):
        raise ValueError(f"max_steps={cfg.max_steps!r}: expected a positive integer or null")
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ValueError(f"seed={cfg.seed!r}: expected a non-negative integer")
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision={cfg.precision!r}: valid values are {', '.join(PRECISIONS)}")
    if cfg.kernels not in KERNELS:
        raise ValueError(f"kernels={cfg.kernels!r}: valid values are {', '.join(KERNELS)}")
    for key in SWITCHES:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, bool):
            raise ValueError(f"{key}={value!r}: valid values are true, false")


def on_cpu(cfg: DictConfig) -> bool:
    import torch

    return cfg.trainer.accelerator == "cpu" or not torch.cuda.is_available()


def check_trainer(cfg: DictConfig) -> None:
    if (
        str(cfg.trainer.strategy).startswith("ddp")
        and cfg.trainer.devices == "auto"
        and on_cpu(cfg)
    ):
        raise ValueError(
            "trainer=ddp on the CPU would run one process: set how many with trainer.devices=N"
        )


def check_optimizer(cfg: DictConfig) -> None:
    """The optimizer checks its own hyperparameters (lr < 0, momentum 0 with γ > 0, ...); a fused
    path that torch.compile builds needs a C++ compiler on the CPU, checked here, not mid-run."""
    import torch

    from trainers.fit import optimizer_factory

    try:
        opt = optimizer_factory(cfg)([torch.nn.Parameter(torch.zeros(1))])
    except TypeError as e:  # e.g. a list where a number belongs: name the optimizer
        raise ValueError(f"optimizer {cfg.optimizer.name} rejects its settings: {e}") from None
    if getattr(opt, "compiles", False) and on_cpu(cfg):
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except RuntimeError as e:
            reason = str(e).splitlines()[0]
            raise ValueError(
                f"optimizer {cfg.optimizer.name} with kernels=fused compiles its kernel, and "
                f"torch.compile finds no C++ compiler here ({reason}); install one or pass "
                "kernels=foreach"
            ) from None


def check_vectorizes(cfg: DictConfig) -> None:
    """What vectorized members need: an elementwise optimizer, a model without batch statistics,
    in-memory data, one process, and no step that couples the members (gradient clipping)."""
    from hydra.utils import get_class

    from data.tensors import TensorDataModule

    lists = [("seed", "non-negative integers"), ("overshoot", "numbers >= 0")]
    lists += [(f"lr.{family}", "numbers > 0") for family in FAMILIES]
    lists += [("lr_scale", "numbers > 0")]
    for key, kind in lists:
        values = OmegaConf.select(cfg.members, key)
        if values is None:
            continue
        whole = key != "seed" or all(isinstance(v, int) for v in values)
        above = (lambda v: v > 0) if key.startswith("lr") else (lambda v: v >= 0)
        if not values or not whole or not all(_is_number(v) and above(v) for v in values):
            raise ValueError(f"members.{key}={list(values)!r}: expected a list of {kind}")
    family = cfg.optimizer.family
    rates, scales = OmegaConf.select(cfg.members, f"lr.{family}"), cfg.members.get("lr_scale")
    if rates and scales:
        raise ValueError(
            f"members.lr.{family}={list(rates)!r} and members.lr_scale={list(scales)!r}: give "
            "the rates, or their factors of the task's rate, not both"
        )
    for key, values in ((f"lr.{family}", rates), ("lr_scale", scales)):
        if values and len(set(values)) > 1 and not cfg.lr_in_label:
            raise ValueError(
                f"members.{key}={list(values)!r}: members of several learning rates need "
                "lr_in_label=true, or their runs would share one folder"
            )
    if not cfg.optimizer.get("vectorizes", False):
        raise ValueError(
            f"optimizer {cfg.optimizer.name} does not vectorize (its update is not elementwise, "
            "or not verified to be); python main.py --list-optimizers marks those that do, "
            "or pass vectorize=false"
        )
    model = get_class(cfg.task.model._target_)
    why_not = getattr(model, "vectorizes", None)
    if why_not is not None:
        raise ValueError(
            f"task {cfg.task.name} does not vectorize: {why_not}; pass vectorize=false"
        )
    if not issubclass(get_class(cfg.task.data._target_), TensorDataModule):
        raise ValueError(f"task {cfg.task.name} does not vectorize: its data are not in memory")
    if str(cfg.trainer.strategy).startswith("ddp"):
        raise ValueError("vectorize=true runs in one process: drop trainer=ddp or vectorize")
    if cfg.trainer.gradient_clip_val is not None:
        raise ValueError(
            f"trainer.gradient_clip_val={cfg.trainer.gradient_clip_val}: clipping the members' "
            "stacked gradients together would couple them; pass vectorize=false to clip"
        )
    if cfg.members.get("apart", "auto") not in ("auto", True, False):
        raise ValueError(f"members.apart={cfg.members.apart!r}: expected one of auto, true, false")


def apart_reason(cfg: DictConfig) -> str | None:
    """Why ``cfg``'s members train as separate one-thread runs side by side instead of as
    one stacked job (``members.apart``: true, or auto where the model's members are measured
    slower than its separate runs on this device); None where they train as members."""
    apart = cfg.members.get("apart", "auto")
    if not cfg.get("vectorize") or apart is False:
        return None
    if apart is True:
        return "members.apart=true"
    from hydra.utils import get_class

    slower = getattr(get_class(cfg.task.model._target_), "slower_as_members_on_cpu", None)
    return f"{slower} (members.apart=false vectorizes anyway)" if slower and on_cpu(cfg) else None


def resolved_precision(precision: str, accelerator: str) -> str:
    """Lightning's name for ``precision`` on ``accelerator``."""
    if precision == "high":
        return "64-true"
    if precision != "auto":
        return precision
    import torch

    cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true"
