"""Vectorized members: the runs of one configuration that differ only in seed, γ or rate train
as the members of one stacked model (``stacked.py``), each filed in its own results folder and
logger as its separate run would be (``module.py``). The plan (trainers/plan.py) says which
members train and whether the job resumes from its checkpoint, kept in
``<optimizer folder>/members-<id>/``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger

from trainers.fit import evaluate, fit, module_settings, optimizer_factory, schedule, task_data
from trainers.fit.trainer import last_checkpoint, log_outcome, make_logger, make_trainer
from trainers.members.module import Member, MembersModule, MembersRecorder, member_metrics
from trainers.members.stacked import Members
from trainers.plan import Claim, Run, busy, ended_summary, logger_version
from trainers.results import RunResults, optimizer_label, read_meta, uses_overshoot


def train_members(claimed: Claim) -> list[dict[str, Any]]:
    """Train the claim's members as one job; their summaries, in order."""
    cfg, runs, job = claimed.job.cfg, claimed.train, claimed.job.folder
    seeds = [r.cfg.seed for r in runs]
    pl.seed_everything(seeds[0], workers=True, verbose=False)
    first = runs[0].cfg  # its optimizer settings are the job's; further γ are param groups
    datamodule = task_data(cfg, seeds[0])
    datamodule.members = seeds
    steps, epochs = schedule(cfg, datamodule)
    members = _members(runs, resumed=claimed.resume is not None)
    ended_before = [not m.active for m in members]
    recorder = MembersRecorder(members, cfg.compute_base_model_loss)
    trainer = make_trainer(cfg, job, recorder, steps, epochs, logger=False)
    models = []
    for seed in seeds:  # each member initialized as its own run is
        pl.seed_everything(seed, workers=True, verbose=False)
        with trainer.init_module():
            models.append(instantiate(cfg.task.model))
    groups = [param_group(r.cfg) for r in runs]
    keys = [tuple(g.items()) for g in groups]
    blocks = list(Counter(keys).values())  # by γ and rate, in order (plan.member_configs)
    module = MembersModule(
        Members(models, blocks),
        optimizer_factory(first),
        **module_settings(first, steps),
        groups=[dict(k) for k in dict.fromkeys(keys)],
    )
    module.model.keep([i for i, m in enumerate(members) if m.active])  # resumed: the live
    fit(trainer, module, datamodule, claimed.resume, job)
    if cfg.checkpoint_every_n_epochs:  # each member's trained model, at base weights
        trained = enumerate(zip(runs, ended_before, strict=True))
        module.save_members({i: last_checkpoint(r.folder) for i, (r, e) in trained if not e})
    final = evaluate(trainer, module, datamodule)
    recorder.finish(trainer, final=final)
    last_checkpoint(job).unlink(missing_ok=True)  # every member has ended: nothing to resume
    summaries = []
    for i, (m, ended) in enumerate(zip(members, ended_before, strict=True)):
        if ended:  # diverged before the job was interrupted; its folder says so
            summaries.append(ended_summary(m.results.dir) or busy(m.results.dir))
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


def param_group(cfg: DictConfig) -> dict[str, float]:
    """A member's hyperparameters that may differ within a job: its learning rate, and γ where
    the optimizer uses it."""
    group = {"lr": float(cfg.task[cfg.optimizer.family].lr)}
    if uses_overshoot(cfg):
        group["overshoot"] = float(cfg.optimizer.overshoot)
    return group


def _members(runs: list[Run], resumed: bool) -> list[Member]:
    """Each member's config, results folder and logger (a resumed one continues its logger's
    version folder); a member that ended before the job was interrupted is not active."""
    members = []
    for run in runs:
        meta = read_meta(run.folder) if resumed else None
        ended = resumed and ended_summary(run.folder) is not None
        logger = None if ended else make_logger(run.cfg, logger_version(meta) if meta else None)
        yaml = OmegaConf.to_yaml(run.cfg, resolve=True)
        own = logger if isinstance(logger, Logger) else None
        members.append(Member(run.cfg, yaml, RunResults(run.folder), own, active=not ended))
    return members
