"""A command's plan, made once: from a composed config to the jobs that train it (``make_plan``:
validated settings, each run's folder, a relaunch with other settings or another way of
computing refused, vectorized members grouped into jobs), then, under each job's locks, what
the job does with what its folders hold (``claim``: train, resume, or leave a run that ended or
that another process trains). ``trainers/train.py`` carries the plan out.

How a run computes (kernels, device, CPU threads, as a member or not) is part of what a float32
result is: each sets an order of summation, and over tens of thousands of steps that moves a
crossing as far as a change of seed. So a finished float32 run counts as done only for a run
that would compute it the same way; float64 runs do not depend on it."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from trainers.cli.checks import FAMILIES, apart_reason, on_cpu, resolved_precision, validate
from trainers.fit import optimizer_factory, resolved_kernels
from trainers.fit.trainer import last_checkpoint, process_rank
from trainers.results import (
    ARCHIVE,
    ENDED,
    RELAUNCH_KEYS,
    flat_settings,
    folder_lock,
    read_meta,
    run_folder,
    stale,
    uses_overshoot,
    write_atomic,
)

GROUP_FILE = "members.json"  # the members a vectorized job's checkpoint holds, in order


@dataclass
class Run:
    """One run: its own config (seed, γ) and its results folder."""

    cfg: DictConfig
    folder: Path


@dataclass
class Job:
    """Runs that train together: one run, or the vectorized members of one configuration.
    ``folder`` keeps the job's checkpoint: the run's own folder, or ``members-<id>/`` beside
    the members' folders."""

    cfg: DictConfig
    runs: list[Run]
    vectorized: bool
    folder: Path
    threads: int | None = None  # the CPU threads it trains with; None: the process's


@dataclass
class Claim:
    """What a job does, decided under its locks: the runs it trains (in order), the checkpoint
    it resumes from, and the summaries of the runs it leaves (ended, or held elsewhere)."""

    job: Job
    train: list[Run]
    resume: Path | None = None
    left: dict[Path, dict[str, Any]] = field(default_factory=dict)

    def summaries(self, trained: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every run's summary in the job's order: ``trained`` for the runs it trained."""
        by_folder = {**self.left, **{r.folder: s for r, s in zip(self.train, trained, strict=True)}}
        return [by_folder[r.folder] for r in self.job.runs]


def make_plan(cfg: DictConfig) -> list[Job]:
    """The jobs that train ``cfg``: one run, or with ``vectorize`` its members (``members.seed``
    and ``members.overshoot``) in one job, or one job per γ where the optimizer cannot take γ
    per param group. A run its experiment's archive holds is restored into its folder first
    (unless ``force``, which trains it again).
    Raises ValueError naming a bad setting or a folder that holds a run of other settings."""
    validate(cfg)
    if not cfg.vectorize:
        run = Run(cfg, run_folder(cfg))
        if not cfg.force:
            restore_archived(run.folder)
        refuse_other_settings(cfg, run.folder)
        return [Job(cfg, [run], vectorized=False, folder=run.folder)]
    apart = apart_reason(cfg) is not None
    runs = [Run(member, run_folder(member)) for member in member_configs(cfg, apart)]
    for run in runs:
        if not cfg.force:
            restore_archived(run.folder)
        refuse_other_settings(run.cfg, run.folder, 1 if apart else None)
    if apart:  # separate runs, each the run its own command trains at one thread
        return [Job(r.cfg, [r], False, r.folder, threads=1) for r in runs]
    per_group = gamma_per_group(cfg)
    groups: dict[float, list[Run]] = {}
    for run in runs:
        groups.setdefault(0.0 if per_group else run.cfg.optimizer.overshoot, []).append(run)
    return [Job(cfg, g, True, job_folder([r.folder for r in g])) for g in groups.values()]


def restore_archived(folder: Path) -> None:
    """Unpack ``folder``'s run from its experiment's archive if it has one (where it has none,
    pandas and pyarrow, which read archives, are not loaded)."""
    if (folder.parents[2] / ARCHIVE).is_dir():
        from trainers.archive import restore

        restore(folder)


def member_configs(cfg: DictConfig, apart: bool = False) -> list[DictConfig]:
    """Each member's own config (its seed, γ and learning rate), γ by γ and rate by rate: the
    config its separate run has (``apart``: the separate run's own, ``vectorize`` off). γ is a
    member's only where the optimizer uses it, a rate only for the optimizer's family
    (``members.lr.<family>``, or ``members.lr_scale`` times the task's rate)."""
    family = cfg.optimizer.family
    seeds = list(dict.fromkeys(cfg.members.seed or [cfg.seed]))
    gammas = [cfg.optimizer.overshoot]
    if uses_overshoot(cfg) and cfg.members.overshoot:
        gammas = list(dict.fromkeys(cfg.members.overshoot))
    if cfg.members.get("lr_scale"):  # factors of the task's rate (powers of 2 scale exactly)
        rates = list(dict.fromkeys(cfg.task[family].lr * s for s in cfg.members.lr_scale))
    else:
        rates = list(dict.fromkeys(cfg.members.lr.get(family) or [cfg.task[family].lr]))
    members = []
    for gamma in gammas:
        for rate in rates:
            for seed in seeds:
                member = copy.deepcopy(cfg)
                member.seed, member.optimizer.overshoot = seed, gamma
                member.task[family].lr = rate
                if apart:  # the config its own command writes
                    member.vectorize = False
                    member.members = {
                        **dict.fromkeys(("seed", "overshoot", "lr_scale")),
                        "lr": dict.fromkeys(FAMILIES),
                        "apart": cfg.members.get("apart", "auto"),
                    }
                members.append(member)
    return members


def gamma_per_group(cfg: DictConfig) -> bool:
    """Whether the optimizer takes γ per param group (SGDO, AdamO), so members of several γ
    train in one job; otherwise (two-model mode, the wrapper) each γ is a job of its own."""
    opt = optimizer_factory(cfg)([torch.nn.Parameter(torch.zeros(1))])
    return not cfg.two_models and "overshoot" in opt.defaults


def job_folder(folders: list[Path]) -> Path:
    """``<first member's optimizer folder>/members-<id>``, id naming the members requested."""
    names = "\n".join(map(_name, folders))
    return folders[0].parent / f"members-{hashlib.sha1(names.encode()).hexdigest()[:10]}"


def _name(folder: Path) -> str:
    """A run's folder below results_dir (which may be given another way on a re-launch)."""
    return "/".join(folder.parts[-4:])


def make_folder(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"cannot write results to {directory} ({e.strerror}); set results_dir=DIR"
        ) from None


def busy(folder: Path) -> dict[str, Any]:
    """The summary of a run that another process holds."""
    skipped = "running in another process; skipped"
    return {"status": skipped, "steps": 0, "results": str(folder), "logs": "-"}


@contextmanager
def claim(job: Job, force: bool) -> Iterator[Claim]:
    """Hold the job's folders while it trains, and decide what it trains: a run that ended is
    left unless ``force``, one that started and did not end resumes, a folder that another
    process holds is left to it. Under DDP every process decides alike; rank 0 holds the lock."""
    for folder in dict.fromkeys([job.folder, *(r.folder for r in job.runs)]):
        make_folder(folder)
    if not job.vectorized and process_rank() != 0:  # a process that rank 0 launched
        yield _claim_run(job, force)
        return
    with folder_lock(job.folder) as held:
        if not held:
            yield Claim(job, [], left={r.folder: busy(r.folder) for r in job.runs})
        elif not job.vectorized:
            yield _claim_run(job, force)
        else:
            with _claim_members(job, force) as members:
                yield members


def _claim_run(job: Job, force: bool) -> Claim:
    (run,) = job.runs
    ended = ended_summary(run.folder)
    if ended is not None and not force:
        return Claim(job, [], left={run.folder: ended})
    return Claim(job, [run], resume=None if force else resume_point(run.folder))


@contextmanager
def _claim_members(job: Job, force: bool) -> Iterator[Claim]:
    """An interrupted job resumes every member it held from its checkpoint (unless each has
    ended since); otherwise the members that have not ended train (all with ``force``)."""
    listed = None if force else _resumable(job.folder)
    chosen = [r for r in job.runs if listed is not None and _name(r.folder) in listed]
    if listed is None or all(ended_summary(r.folder) for r in chosen):
        listed = None
        chosen = [r for r in job.runs if force or not ended_summary(r.folder)]
    left = {r.folder: ended_summary(r.folder) or busy(r.folder) for r in job.runs}
    with ExitStack() as stack:
        held = [stack.enter_context(folder_lock(r.folder)) for r in chosen]
        if listed is not None and not all(held):  # a resume needs every member it held
            yield Claim(job, [], left={r.folder: busy(r.folder) for r in job.runs})
            return
        chosen = [r for r, h in zip(chosen, held, strict=True) if h]
        if chosen:
            names = [_name(r.folder) for r in chosen]
            write_atomic(job.folder / GROUP_FILE, json.dumps({"members": names}, indent=2) + "\n")
        resume = last_checkpoint(job.folder) if listed is not None and chosen else None
        trained = {r.folder for r in chosen}
        yield Claim(job, chosen, resume, {f: s for f, s in left.items() if f not in trained})


def _resumable(folder: Path) -> list[str] | None:
    """The members of an interrupted job that can resume from its checkpoint, else None."""
    listing = folder / GROUP_FILE
    if not last_checkpoint(folder).is_file() or not listing.is_file():
        return None
    return list(json.loads(listing.read_text())["members"])


# What running a command again does with the folder it ran in: skip a run that ended,
# resume one that stopped, refuse one with other settings.
def ended_summary(directory: Path) -> dict[str, Any] | None:
    """The summary of an ended run in ``directory``, or None if it has not ended."""
    meta = read_meta(directory)
    if meta is None or meta.get("status") not in ENDED:
        return None
    return {
        "status": f"{meta['status']} (already; force=true to re-run)",
        "steps": meta.get("steps"),
        "results": str(directory),
        "logs": meta.get("logs", "?"),
        **meta.get("final", {}),
    }


def resume_point(directory: Path) -> Path | None:
    """The checkpoint of a run that started and did not end, if any."""
    ckpt = last_checkpoint(directory)
    return ckpt if ckpt.is_file() and read_meta(directory) is not None else None


def logger_version(meta: dict[str, Any]) -> int | None:
    """The logger's version folder a run wrote (a resumed run continues it), if any."""
    logs = meta.get("logs")
    version = Path(logs).name.removeprefix("version_") if logs else ""
    return int(version) if version.isdigit() else None


def refuse_other_settings(cfg: DictConfig, directory: Path, threads: int | None = None) -> None:
    """Refuse a run whose folder holds a run of other settings or of another results version,
    or a float32 run computed another way (kernels, ``threads`` or the process's, device),
    unless ``force``."""
    meta = read_meta(directory)
    if cfg.force or meta is None:
        return
    change = stale(meta) or config_change(directory, cfg)
    if change is not None:
        raise ValueError(
            f"{directory} holds a run with other settings ({change}); "
            "use another experiment_name, or force=true to replace it"
        )
    float64 = resolved_precision(str(cfg.precision), str(cfg.trainer.accelerator)) == "64-true"
    change = (
        None if float64 or cfg.any_compute else compute_change(meta, planned_compute(cfg, threads))
    )
    if change is not None:
        raise ValueError(
            f"{directory} holds a float32 run {change}, and float32 numbers differ between "
            "the two (a crossing moves as far as with another seed): any_compute=true counts "
            "it as done, force=true replaces it, or use another experiment_name"
        )


def config_change(directory: Path, cfg: DictConfig) -> str | None:
    """The first setting in which ``cfg`` differs from the run stored in ``directory``, if any.

    Names (job_name), where logs go (``logger.*``, whose name follows job_name) and a γ that the
    optimizer does not use are not settings of the run: a grid over γ × optimizers repeats CM
    for every γ, and the repeats are the same run. Precision is compared as what it resolves
    to, so a folder written when the trainer config held it still matches.
    """
    stored_path = directory / "config.yaml"
    if not stored_path.is_file():
        return None
    ignored = {*RELAUNCH_KEYS, "job_name", "precision", "trainer.precision"}
    if not uses_overshoot(cfg):
        ignored.add("optimizer.overshoot")
    stored = flat_settings(OmegaConf.to_container(OmegaConf.load(stored_path)))
    current = flat_settings(OmegaConf.to_container(cfg, resolve=True))
    there, now = _precision(stored), _precision(current)
    if there != now:
        return f"precision: {there!r} there, {now!r} now"
    for key in sorted(stored.keys() & current.keys()):  # keys added by newer code don't count
        if key not in ignored and not key.startswith("logger.") and stored[key] != current[key]:
            return f"{key}: {stored[key]!r} there, {current[key]!r} now"
    return None


def _precision(flat: dict[str, Any]) -> str:
    """The precision a flattened config runs in; older configs set it in ``trainer``."""
    given = flat.get("precision") or flat.get("trainer.precision") or "auto"
    return resolved_precision(str(given), str(flat.get("trainer.accelerator", "auto")))


# How a run computes (the module docstring says why it matters for float32).
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


def planned_compute(cfg: DictConfig, threads: int | None = None) -> dict[str, Any]:
    """How ``cfg`` would compute in this process (at ``threads``, or the process's)."""
    device = torch.device("cpu") if on_cpu(cfg) else torch.device("cuda", 0)
    opt = optimizer_factory(cfg)([torch.nn.Parameter(torch.zeros(1))])
    threads = threads or torch.get_num_threads()
    return compute_of(resolved_kernels(opt), device, threads, bool(cfg.vectorize))


def compute_line(compute: dict[str, Any]) -> str:
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
    return f"computed with {compute_line(recorded)}; this run would use {compute_line(planned)}"
