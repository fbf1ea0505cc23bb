"""What a command sweeps: its overrides checked before Hydra runs a job (names, composition and
validation of every swept value); with ``vectorize=true`` the seeds, γ and rates of a sweep
grouped into the members of one job per configuration; and, after a multirun, its
steps-to-95 % table and archive, made by ``scripts/sweep_summary.py`` in a process of its own
(training never imports scripts/)."""

from __future__ import annotations

import atexit
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from data import DataNotFoundError
from trainers.cli import CONFIGS, UsageError, choices
from trainers.cli.checks import validate

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
        if sep and group in ("task", "optimizer", "trainer", "experiment", "hparams", "budget"):
            for name in value.split(","):
                if name not in choices(group):
                    raise UsageError(
                        f"unknown {group} {name!r}; valid: {', '.join(choices(group))}"
                    )


def check_composes(args: list[str]) -> None:
    """Compose the run's config before Hydra runs it, so a bad key, value or type is one line,
    exit 2, and nothing is written.

    A multirun is checked by composing each swept value once (the other keys at their first
    value), the experiment's own sweep included: linear in the values, not their product. Missing
    data refuses a single run, and a multirun where no job finds its data; where some do, only
    the others fail, and the rest run.
    """
    overrides = [a for a in args if a.startswith("~") or ("=" in a and not a.startswith("-"))]
    multirun = any(a in ("-m", "--multirun") for a in args)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        if not multirun:
            _, missing = compose_checked(overrides)
            if missing:
                raise UsageError(missing)
            return
        variants = sweep_variants(overrides, {})
        if variants is None:
            return  # a sweep Hydra's sweeper samples (e.g. Optuna intervals): left to it
        cfg, missing = compose_checked(variants[0])
        params = OmegaConf.select(cfg, "hydra.sweeper.params")
        # An experiment's own sweep joins the command line's; else the first is checked already.
        rest = sweep_variants(overrides, dict(params)) if params else variants[1:]
        found = [compose_checked(variant)[1] for variant in rest or []]
        if missing and all(found):
            raise UsageError(f"no job of this multirun finds its data: {missing}")


def compose_checked(overrides: list[str]) -> tuple[Any, str]:
    """The composed config (Hydra keys included), validated as ``train`` validates it, or a
    one-line UsageError saying what is wrong; and the missing data file's line, if one is."""

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
        return cfg, str(e).splitlines()[0]
    except ValueError as e:
        raise UsageError(str(e).splitlines()[0]) from None
    return cfg, ""


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


SWEPT_AS_MEMBERS = {  # a swept key, and the members key its values become
    "seed": "members.seed",
    "optimizer.overshoot": "members.overshoot",
    "task.sgd.lr": "members.lr.sgd",  # each family's rate: a job uses its optimizer's
    "task.adam.lr": "members.lr.adam",
}


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
    out = [a for a in args if a.partition("=")[0] not in SWEPT_AS_MEMBERS]
    for key, member_key in SWEPT_AS_MEMBERS.items():
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


# After a multirun.
SUMMARY = Path(__file__).resolve().parents[2] / "scripts" / "sweep_summary.py"


class MultirunSummary(Callback):
    """Prints the table at the end of a multirun, also one in which a job failed.

    Hydra skips ``on_multirun_end`` when a job fails (it reports the failure and exits 1 once
    every job has run), so the table of the jobs that did run is then printed at exit.
    """

    def __init__(self) -> None:
        self._owed: DictConfig | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._owed = config
        atexit.register(self._print_if_owed)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._owed = None
        summarize(config)

    def _print_if_owed(self) -> None:
        if self._owed is not None:
            summarize(self._owed)


def summarize(config: DictConfig) -> None:
    """The summary of ``config``'s experiment, printed where this process prints."""
    sys.stdout.flush()
    where = [str(config.results_dir), str(config.experiment_name)]
    subprocess.run([sys.executable, str(SUMMARY), *where], check=False)
