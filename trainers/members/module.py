"""Vectorized members in Lightning: the module that trains them (``Members`` inside) and the
recorder that files each member's steps, evaluations and outcome in its own results folder and
logger, as its own run would."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger

from trainers.fit.callbacks import EVAL_FIELDS, StepRecorder, eval_row, write_steps
from trainers.fit.module import TrainModule, deployed_weights, run_optimizer
from trainers.members.stacked import Members
from trainers.results import RunResults, Status, write_atomic


@dataclass
class Member:
    """One member of a vectorized job: its own config, results folder and logger. ``active``
    turns False once the member has ended (diverged), or if it had ended before a resume."""

    cfg: DictConfig
    config_yaml: str
    results: RunResults
    logger: Logger | None
    active: bool = True
    status: Status = Status.FINISHED
    diverged_at: int | None = None

    @property
    def logs(self) -> str | None:
        return self.logger.log_dir if self.logger is not None else None  # type: ignore[attr-defined, no-any-return]


def member_metrics(metrics: dict[str, float], i: int) -> dict[str, float]:
    """Member ``i``'s entries of a vectorized job's metrics, under a separate run's names."""
    tail = f"/{i}"
    return {k.removesuffix(tail): v for k, v in metrics.items() if k.endswith(tail)}


class MembersModule(TrainModule):
    """``TrainModule`` over ``Members``: the training loss is the sum of the members' losses, and
    each member's evaluation is logged under ``<stage>/<metric>/<member>``. ``groups`` gives each
    block of members its own hyperparameters (γ, the learning rate) as a param group; schedules
    then scale each group's own rate."""

    model: Members

    def __init__(
        self, model: Members, *args: Any, groups: list[dict[str, float]], **kwargs: Any
    ) -> None:
        super().__init__(model, *args, **kwargs)
        self.groups = groups

    def optimizer_params(self) -> Any:
        blocks = self.model.block_parameters()
        if len(blocks) == 1:
            return blocks[0]
        return [{"params": p, **g} for p, g in zip(blocks, self.groups, strict=True)]

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        return super().training_step(batch, batch_idx).sum()

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        losses, metrics = self.batch_loss(batch)
        n = len(batch[0])
        for name, values in {"loss": losses, **metrics}.items():
            for i, value in enumerate(values):
                self.log(f"{stage}/{name}/{i}", value, on_epoch=True, batch_size=n)

    def save_members(self, paths: dict[int, Path]) -> None:
        """Members' deployable weights (member index → checkpoint path), keyed as their own
        runs' checkpoints hold them."""
        with deployed_weights(run_optimizer(self.trainer), self):
            for i, path in paths.items():
                state = {f"model.{k}": v for k, v in self.model.member_state(i).items()}
                checkpoint = {
                    "state_dict": state,
                    "global_step": self.trainer.global_step,
                    "epoch": self.trainer.current_epoch,
                    "pytorch-lightning_version": pl.__version__,
                }
                buffer = io.BytesIO()
                torch.save(checkpoint, buffer)
                write_atomic(path, buffer.getvalue())


class MembersRecorder(StepRecorder):
    """``StepRecorder`` for members: the values of a step are vectors over the members, and each
    active member's rows go to its own folder. A member whose loss turns non-finite is closed as
    ``diverged`` at its step and the others go on, computed alone from then on
    (``Members.keep``); the job stops when none is left."""

    vectorized = True

    def __init__(self, members: list[Member], base_loss: bool = True) -> None:
        super().__init__(members[0].results, members[0].config_yaml, base_loss)
        self.members = members

    def member_times(self, trainer: pl.Trainer, results: RunResults) -> dict[str, Any]:
        """A member's times: the job's, but ``step_time_s`` (and its spread) is a member's share,
        the job's step time over the number of members (``job_step_time_s`` is the job's own), so
        reports compare a step's cost for each optimizer whatever the size of its job."""
        times = self.clock.times(trainer.global_step, results)
        job, spread = times["step_time_s"], times["step_time_iqr_s"]
        n = len(self.members)
        return {
            **times,
            "step_time_s": job / n if job is not None else None,
            "step_time_iqr_s": spread / n if spread is not None else None,
            "job_step_time_s": job,
        }

    def active(self) -> list[tuple[int, Member]]:
        return [(i, m) for i, m in enumerate(self.members) if m.active]

    def start_results(self, trainer: pl.Trainer, meta: dict[str, Any]) -> None:
        for _, m in self.active():
            m.results.start(m.config_yaml, {**meta, "members": len(self.members), "logs": m.logs})

    def open_results(self) -> list[RunResults]:
        return [m.results for _, m in self.active()]

    def write_rows(
        self, trainer: pl.Trainer, infos: list[dict[str, Any]], names: list[str], rows: Any
    ) -> None:
        ended = False
        for i, m in self.active():
            bad = write_steps(m.results, m.logger, infos, names, rows[..., i].tolist())
            if bad is not None:
                m.status, m.diverged_at, m.active = Status.DIVERGED, bad, False
                times = self.member_times(trainer, m.results)
                m.results.finish(Status.DIVERGED, logs=m.logs, diverged_at_step=bad, **times)
                ended = True
        live = [i for i, _ in self.active()]
        if not live:
            trainer.should_stop = True
        elif ended:  # the ended stop costing: the job computes the live members alone
            module = trainer.lightning_module
            assert isinstance(module, MembersModule)
            module.model.keep(live)

    def _record_eval(self, trainer: pl.Trainer, stage: str) -> None:
        for i, m in self.active():
            row = eval_row(trainer, stage, f"/{i}")
            if row is not None:
                m.results.append("evals.csv", row, EVAL_FIELDS)
                if m.logger is not None:
                    values = {f"{stage}/{k}": v for k, v in row.items() if k in EVAL_FIELDS[3:]}
                    m.logger.log_metrics(values, step=row["step"])

    def finish(self, trainer: pl.Trainer, **meta: Any) -> None:
        """Close every member still training; ``meta["final"]`` holds all members' metrics."""
        final = meta.pop("final", {})
        for i, m in self.active():
            m.active = False
            times = self.member_times(trainer, m.results)
            m.results.finish(
                m.status,
                **meta,
                final=member_metrics(final, i),
                logs=m.logs,
                diverged_at_step=None,
                **times,
            )
