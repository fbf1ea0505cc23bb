"""A vectorized job: the runs of one configuration that differ only in seed (and γ) train as the
members of one stacked model (trainers/stacked.py), each filed in its own results folder and
logger as its separate run would be. Re-running the command does only what is missing: members
that ended are not re-run, and an interrupted job resumes every member from the job's
checkpoint, kept in ``<optimizer folder>/members-<id>/`` beside the members' folders."""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger

from trainers.checkpoints import last_checkpoint
from trainers.checks import validate
from trainers.labels import optimizer_label, run_folder, uses_overshoot
from trainers.logs import log_outcome, make_logger, silence_unactionable
from trainers.members import Member, MembersModule, MembersRecorder, member_metrics
from trainers.optim import optimizer_factory
from trainers.relaunch import (
    ended_summary,
    folder_lock,
    logger_version,
    refuse_other_settings,
)
from trainers.results import RunResults, read_meta, write_atomic
from trainers.stacked import Members
from trainers.train import (
    evaluate,
    fit,
    make_datamodule,
    make_folder,
    module_settings,
    schedule,
)
from trainers.trainer import make_trainer

GROUP_FILE = "members.json"  # the members a job's checkpoint holds, in order


def member_configs(cfg: DictConfig) -> list[DictConfig]:
    """Each member's own config (its seed and γ), γ by γ: the config its separate run has.
    γ is a member's only where the optimizer uses it."""
    seeds = list(dict.fromkeys(cfg.members.seed or [cfg.seed]))
    gammas = [cfg.optimizer.overshoot]
    if uses_overshoot(cfg) and cfg.members.overshoot:
        gammas = list(dict.fromkeys(cfg.members.overshoot))
    members = []
    for gamma in gammas:
        for seed in seeds:
            member = copy.deepcopy(cfg)
            member.seed, member.optimizer.overshoot = seed, gamma
            members.append(member)
    return members


def gamma_per_group(cfg: DictConfig) -> bool:
    """Whether the optimizer takes γ per param group (SGDO, AdamO), so members of several γ
    train in one job; otherwise (two-model mode, the wrapper) each γ is a job of its own."""
    opt = optimizer_factory(cfg)([torch.nn.Parameter(torch.zeros(1))])
    return not cfg.two_models and "overshoot" in opt.defaults


def train_members(cfg: DictConfig) -> dict[str, Any]:
    """Train every member of ``cfg.members``; return a summary with one entry per member."""
    validate(cfg)
    members = member_configs(cfg)
    folders = [run_folder(m) for m in members]
    for member, folder in zip(members, folders, strict=True):
        refuse_other_settings(member, folder)
    silence_unactionable()
    if gamma_per_group(cfg):
        jobs = [list(range(len(members)))]
    else:
        by_gamma: dict[float, list[int]] = {}
        for i, m in enumerate(members):
            by_gamma.setdefault(m.optimizer.overshoot, []).append(i)
        jobs = list(by_gamma.values())
    summaries = []
    for job in jobs:
        summaries += train_job(cfg, [members[i] for i in job], [folders[i] for i in job])
    counts = Counter(str(s["status"]).split(" ")[0] for s in summaries)
    return {
        "status": ", ".join(f"{n} {status}" for status, n in counts.items()) + " (members)",
        "steps": max(int(s.get("steps") or 0) for s in summaries),
        "results": str(Path(cfg.results_dir) / cfg.experiment_name / cfg.task.name),
        "members": summaries,
    }


def job_folder(folders: list[Path]) -> Path:
    """``<first member's optimizer folder>/members-<id>``, id naming the members requested."""
    names = "\n".join(map(_name, folders))
    return folders[0].parent / f"members-{hashlib.sha1(names.encode()).hexdigest()[:10]}"


def _name(folder: Path) -> str:
    """A run's folder below results_dir (which may be given another way on a re-launch)."""
    return "/".join(folder.parts[-4:])


def train_job(
    cfg: DictConfig, members: list[DictConfig], folders: list[Path]
) -> list[dict[str, Any]]:
    """One vectorized job: resume it if it was interrupted, else train the members that have
    not ended (all with ``force``). Members another process trains are left to it. Returns
    the members' summaries in their order."""
    job = job_folder(folders)
    for folder in [job, *folders]:
        make_folder(folder)
    with folder_lock(job) as held:
        if not held:
            return [_skipped(f) for f in folders]
        listed = None if cfg.force else _resumable(job)
        chosen = [i for i, f in enumerate(folders) if listed is not None and _name(f) in listed]
        if listed is None or all(ended_summary(folders[i]) for i in chosen):
            listed = None  # nothing to resume (or every member ended after the checkpoint)
            chosen = [i for i, f in enumerate(folders) if cfg.force or not ended_summary(f)]
        summaries = {i: ended_summary(f) or _skipped(f) for i, f in enumerate(folders)}
        with ExitStack() as stack:
            held_by_us = [stack.enter_context(folder_lock(folders[i])) for i in chosen]
            if listed is not None and not all(held_by_us):
                return [_skipped(f) for f in folders]
            chosen = [i for i, held in zip(chosen, held_by_us, strict=True) if held]
            if chosen:
                names = [_name(folders[i]) for i in chosen]
                write_atomic(job / GROUP_FILE, json.dumps({"members": names}, indent=2) + "\n")
                resume = last_checkpoint(job) if listed is not None else None
                picked = [members[i] for i in chosen], [folders[i] for i in chosen]
                summaries.update(zip(chosen, _train(cfg, *picked, job, resume), strict=True))
        return [summaries[i] for i in range(len(folders))]


def _resumable(job: Path) -> list[str] | None:
    """The members of an interrupted job that can resume from its checkpoint, else None."""
    listing = job / GROUP_FILE
    if not last_checkpoint(job).is_file() or not listing.is_file():
        return None
    return list(json.loads(listing.read_text())["members"])


def _skipped(folder: Path) -> dict[str, Any]:
    return {"status": "running in another process; skipped", "steps": 0, "results": str(folder)}


def _train(
    cfg: DictConfig,
    configs: list[DictConfig],
    folders: list[Path],
    job: Path,
    resume: Path | None,
) -> list[dict[str, Any]]:
    seeds = [m.seed for m in configs]
    pl.seed_everything(seeds[0], workers=True, verbose=False)
    first = configs[0]  # its optimizer settings are the job's; further γ are param groups
    datamodule = make_datamodule(cfg, seeds[0])
    datamodule.members = seeds
    steps, epochs = schedule(cfg, datamodule)
    members = _members(configs, folders, resumed=resume is not None)
    ended_before = [not m.active for m in members]
    recorder = MembersRecorder(members, cfg.compute_base_model_loss)
    trainer = make_trainer(cfg, job, recorder, steps, epochs, logger=False)
    models = []
    for seed in seeds:  # each member initialized as its own run is
        pl.seed_everything(seed, workers=True, verbose=False)
        with trainer.init_module():
            models.append(instantiate(cfg.task.model))
    gammas = [m.optimizer.overshoot for m in configs]
    blocks = list(Counter(gammas).values())  # γ by γ, in order (member_configs)
    module = MembersModule(
        Members(models, blocks),
        optimizer_factory(first),
        **module_settings(first, steps),
        overshoots=list(dict.fromkeys(gammas)),
    )
    fit(trainer, module, datamodule, resume, job)
    if cfg.checkpoint_every_n_epochs:  # each member's trained model, at base weights
        trained = enumerate(zip(folders, ended_before, strict=True))
        module.save_members({i: last_checkpoint(f) for i, (f, ended) in trained if not ended})
    final = evaluate(trainer, module, datamodule)
    recorder.finish(trainer, final=final)
    last_checkpoint(job).unlink(missing_ok=True)  # every member has ended: nothing to resume
    summaries = []
    for i, (m, ended) in enumerate(zip(members, ended_before, strict=True)):
        if ended:  # diverged before the job was interrupted; its folder says so
            summaries.append(ended_summary(m.results.dir) or _skipped(m.results.dir))
            continue
        summary = {
            "status": m.status.value,
            "steps": m.diverged_at or trainer.global_step,
            "results": str(m.results.dir),
            "logs": m.logs,
            **member_metrics(final, i),
        }
        labels = {"task": cfg.task.name, "optimizer": optimizer_label(m.cfg), "seed": m.cfg.seed}
        log_outcome(m.logger, trainer.global_step, labels, summary)
        summaries.append(summary)
    return summaries


def _members(configs: list[DictConfig], folders: list[Path], resumed: bool) -> list[Member]:
    """Each member's config, results folder and logger (a resumed one continues its logger's
    version folder); a member that ended before the job was interrupted is not active."""
    members = []
    for member, folder in zip(configs, folders, strict=True):
        meta = read_meta(folder) if resumed else None
        ended = resumed and ended_summary(folder) is not None
        logger = None if ended else make_logger(member, logger_version(meta) if meta else None)
        yaml = OmegaConf.to_yaml(member, resolve=True)
        own = logger if isinstance(logger, Logger) else None
        members.append(Member(member, yaml, RunResults(folder), own, active=not ended))
    return members
