"""Train what a composed config asks for: its plan (trainers/plan.py), then each job, one run
here or the vectorized members of one configuration (trainers/members/__init__.py), each writing its
results folder. Re-running a command only does what is missing (the plan's claims)."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from trainers.cli.checks import apart_reason
from trainers.fit import evaluate, fit, module_settings, optimizer_factory, schedule, task_data
from trainers.fit.callbacks import StepRecorder
from trainers.fit.module import TrainModule
from trainers.fit.trainer import (
    last_checkpoint,
    log_outcome,
    make_logger,
    make_trainer,
    process_rank,
    rank_weight_diff,
    silence_unactionable,
)
from trainers.plan import Claim, Job, claim, logger_version, make_plan
from trainers.results import RunResults, optimizer_label, read_meta


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test ``cfg``'s runs; return where things went and the final losses (with
    ``vectorize``, one entry per member under ``members``)."""
    jobs = make_plan(cfg)
    silence_unactionable()
    force = [bool(cfg.force)] * len(jobs)
    if jobs[0].threads is None:
        summaries = list(chain(*map(train_job, jobs, force)))
    else:
        summaries = train_apart(jobs, force, apart_reason(cfg))
    return members_summary(cfg, summaries) if cfg.vectorize else summaries[0]


def train_job(job: Job, force: bool) -> list[dict[str, Any]]:
    """Claim the job's folders and train what the claim says; every run's summary."""
    with claim(job, force) as claimed:
        return claimed.summaries(train_claim(claimed))


def train_apart(jobs: list[Job], force: list[bool], why: str | None) -> list[dict[str, Any]]:
    """The members as separate one-thread runs, as many side by side as the process had
    threads (each in a process of its own; one at a time in this one)."""
    threads = torch.get_num_threads()
    workers = min(threads, len(jobs))
    print(f"vectorize=true: {len(jobs)} separate runs, {workers} at a time, one thread each: {why}")
    torch.set_num_threads(1)
    try:
        if workers == 1:
            return list(chain(*map(train_job, jobs, force)))
        spawn = multiprocessing.get_context("spawn")  # a fork would copy torch's thread pools
        with ProcessPoolExecutor(workers, spawn, initializer=_one_thread) as pool:
            return list(chain(*pool.map(train_job, jobs, force)))
    finally:
        torch.set_num_threads(threads)


def _one_thread() -> None:
    torch.set_num_threads(1)
    silence_unactionable()


def train_claim(claimed: Claim) -> list[dict[str, Any]]:
    """The summaries of the runs the claim trains."""
    if not claimed.train:
        return []
    if claimed.job.vectorized:
        from trainers.members import train_members  # loaded only for vectorized jobs

        return train_members(claimed)
    return [train_run(claimed)]


def train_run(claimed: Claim) -> dict[str, Any]:
    """One run: datamodule, model and optimizer, fit, test at the deployed weights."""
    (run,) = claimed.train
    cfg, directory = run.cfg, run.folder
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = task_data(cfg, cfg.seed)
    steps, epochs = schedule(cfg, datamodule)
    results = RunResults(directory, write=process_rank() == 0)
    recorder = StepRecorder(
        results, OmegaConf.to_yaml(cfg, resolve=True), cfg.compute_base_model_loss
    )
    meta = read_meta(directory) if claimed.resume else None
    logger = make_logger(cfg, logger_version(meta) if meta else None)
    trainer = make_trainer(cfg, directory, recorder, steps, epochs, logger)
    with trainer.init_module():  # in the run's dtype, so a float64 checkpoint loads exactly
        model = instantiate(cfg.task.model)
    module = TrainModule(model, optimizer_factory(cfg), **module_settings(cfg, steps))
    fit(trainer, module, datamodule, claimed.resume, directory)
    if cfg.checkpoint_every_n_epochs:  # the trained model, at base weights
        trainer.save_checkpoint(last_checkpoint(directory), weights_only=False)
    final = evaluate(trainer, module, datamodule)
    logs = trainer.logger.log_dir if trainer.logger is not None else None
    recorder.finish(trainer, final=final, logs=logs, **ranks(trainer))
    summary = {
        "status": recorder.status,
        "steps": trainer.global_step,
        "resumed_at_steps": results.meta.get("resumed_at_steps", []),
        "results": str(directory),
        "logs": logs,
        **final,
    }
    labels = {"task": cfg.task.name, "optimizer": optimizer_label(cfg), "seed": cfg.seed}
    log_outcome(trainer.logger, trainer.global_step, labels, summary)
    return summary


def members_summary(cfg: DictConfig, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """A vectorized command's summary: how many members ended how, and each member's."""
    counts = Counter(str(s["status"]).split(" ")[0] for s in summaries)
    return {
        "status": ", ".join(f"{n} {status}" for status, n in counts.items()) + " (members)",
        "steps": max(int(s.get("steps") or 0) for s in summaries),
        "results": str(Path(cfg.results_dir) / cfg.experiment_name / cfg.task.name),
        "members": summaries,
    }


def ranks(trainer: pl.Trainer) -> dict[str, Any]:
    """Under DDP: the world size and how far the ranks' deployed weights ended apart."""
    if trainer.world_size == 1:
        return {}
    return {"world_size": trainer.world_size, "rank_weight_diff": rank_weight_diff(trainer)}
