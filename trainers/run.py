"""One run: config → datamodule + model + optimizer → Lightning trainer → results folder."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from filelock import FileLock, Timeout
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from pytorch_lightning.utilities.warnings import PossibleUserWarning

from trainers.base_weights import deployed_weights, run_optimizer
from trainers.callbacks import BaseWeightsEvaluation, LossProgressBar, StepRecorder
from trainers.checkpoints import EpochStartCheckpoint, last_checkpoint
from trainers.checks import check_types
from trainers.module import TrainModule
from trainers.optim import fastest
from trainers.results import RunResults, read_meta, stale

# Printed on every run, and nothing a user of the harness can act on: Lightning's own use of a
# torch class that torch deprecates; its advice to add DataLoader workers, which would only slow
# batches that are slices of tensors already in memory (on the training device); and its note
# that an epoch is shorter than log_every_n_steps, which StepRecorder's blocks span anyway.
UNACTIONABLE_WARNINGS = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    (r"The '\w+' does not have many workers", PossibleUserWarning),
    (r"The number of training batches \(\d+\) is smaller than the logging", PossibleUserWarning),
)


class _Unactionable(logging.Filter):
    """Drops what every run would print and no one can act on: Lightning's advertisement for
    its hosted logger, and torch.compile's note that a CPU machine has no CUDA runtime."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "litlogger" not in message and "No CUDA runtime is found" not in message


UNACTIONABLE_LOGS = _Unactionable()


class Interrupted(Exception):
    """The run was stopped (Ctrl-C, SIGTERM); its results folder says so and can be resumed."""


def uses_overshoot(cfg: DictConfig) -> bool:
    """Whether ``optimizer.overshoot`` (γ) changes what this run computes.

    True in two-model mode and for every optimizer config whose factory reads γ (SGDO, AdamO,
    the wrapper around any optimizer), so a new Overshoot config needs no registration.
    """
    factory = OmegaConf.to_container(cfg.optimizer.factory, resolve=False)
    return bool(cfg.two_models) or "${optimizer.overshoot}" in str(factory)


def optimizer_label(cfg: DictConfig) -> str:
    """Folder name of the optimizer: its name, γ where Overshoot is used, and the mode."""
    name = str(cfg.optimizer.name)
    if not uses_overshoot(cfg):
        return name
    mode = "_two_models" if cfg.two_models else ""
    return f"{name}{mode}_g{cfg.optimizer.overshoot:g}"


def optimizer_factory(cfg: DictConfig) -> Any:
    """``factory(params)`` builds the run's optimizer, on its fastest path (``cfg.fused``).

    Lists and dicts arrive as Python ones (``_convert_``), so the optimizer state a checkpoint
    stores (e.g. Adam's betas) loads with ``torch.load(weights_only=True)`` when resuming.
    """
    return fastest(instantiate(cfg.optimizer.factory, _convert_="all"), bool(cfg.fused))


def run_dir(cfg: DictConfig) -> Path:
    return (
        Path(cfg.results_dir)
        / str(cfg.experiment_name)
        / str(cfg.task.name)
        / optimizer_label(cfg)
        / f"seed={cfg.seed}"
    )


def finished_summary(directory: Path) -> dict[str, Any] | None:
    """The summary of an ended run in ``directory``, or None if it has not ended."""
    meta = read_meta(directory)
    if meta is None or meta.get("status") not in ("finished", "diverged"):
        return None
    return {
        "status": f"{meta['status']} (already; force=true to re-run)",
        "steps": meta.get("steps"),
        "results": str(directory),
        "logs": meta.get("logs", "?"),
        **meta.get("final", {}),
    }


# Keys that may differ between a run and its re-launch (where it runs, not what it computes).
RELAUNCH_KEYS = ("force", "data.root", "data.download", "trainer.enable_progress_bar")


def config_change(directory: Path, cfg: DictConfig) -> str | None:
    """The first setting in which ``cfg`` differs from the run stored in ``directory``, if any.

    Names (job_name), where logs go (``logger.*``, whose name follows job_name) and a γ that the
    optimizer does not use are not settings of the run: a grid over γ × optimizers repeats CM
    for every γ, and the repeats are the same run.
    """
    stored_path = directory / "config.yaml"
    if not stored_path.is_file():
        return None
    ignored = {*RELAUNCH_KEYS, "job_name"}
    if not uses_overshoot(cfg):
        ignored.add("optimizer.overshoot")
    stored = _flat(OmegaConf.to_container(OmegaConf.load(stored_path)))
    current = _flat(OmegaConf.to_container(cfg, resolve=True))
    for key in sorted(stored.keys() & current.keys()):  # keys added by newer code don't count
        if key not in ignored and not key.startswith("logger.") and stored[key] != current[key]:
            return f"{key}: {stored[key]!r} there, {current[key]!r} now"
    return None


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.removesuffix("."): tree}
    return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}


def check_run(cfg: DictConfig, directory: Path) -> None:
    """Refuse, before any work, what would fail late or overwrite another configuration's run."""
    # The optimizer checks its own hyperparameters (lr < 0, momentum 0 with γ > 0, ...).
    try:
        optimizer_factory(cfg)([torch.nn.Parameter(torch.zeros(1))])
    except TypeError as e:  # e.g. a list where a number belongs: name the optimizer
        raise ValueError(f"optimizer {cfg.optimizer.name} rejects its settings: {e}") from None
    meta = read_meta(directory)
    on_cpu = cfg.trainer.accelerator == "cpu" or not torch.cuda.is_available()
    if str(cfg.trainer.strategy).startswith("ddp") and cfg.trainer.devices == "auto" and on_cpu:
        raise ValueError(
            "trainer=ddp on the CPU would run one process: set how many with trainer.devices=N"
        )
    change = None if cfg.force else (stale(meta) if meta else None) or config_change(directory, cfg)
    if change is not None:
        raise ValueError(
            f"{directory} holds a run with other settings ({change}); "
            "use another experiment_name, or force=true to replace it"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"cannot write results to {directory} ({e.strerror}); set results_dir=DIR"
        ) from None


def resume_point(directory: Path) -> tuple[Path, int | None] | None:
    """(checkpoint, TensorBoard version) of a run that started and did not end, if any."""
    ckpt = last_checkpoint(directory)
    meta = read_meta(directory)
    if not ckpt.is_file() or meta is None:
        return None
    logs = meta.get("logs")
    version = Path(logs).name.removeprefix("version_") if logs else ""
    return ckpt, int(version) if version.isdigit() else None


def make_trainer(
    cfg: DictConfig,
    directory: Path,
    recorder: StepRecorder,
    steps: int,
    epochs: int,
    version: int | None,
) -> pl.Trainer:
    """The Lightning trainer of one run: its callbacks, logger and precision.

    ``version`` continues the logger's version folder of a resumed run.
    """
    trainer_cfg: dict[str, Any] = dict(OmegaConf.to_container(cfg.trainer, resolve=True))  # type: ignore[arg-type]
    if cfg.precision is not None:
        trainer_cfg["precision"] = "64-true" if cfg.precision == "high" else cfg.precision
    if trainer_cfg["precision"] == "auto":
        trainer_cfg["precision"] = auto_precision(str(trainer_cfg["accelerator"]))
    callbacks: list[pl.Callback] = [BaseWeightsEvaluation(), recorder]
    if trainer_cfg["enable_progress_bar"]:
        callbacks.append(LossProgressBar())
    if cfg.checkpoint_every_n_epochs:
        every = int(cfg.checkpoint_every_n_epochs)
        callbacks.append(EpochStartCheckpoint(last_checkpoint(directory), every))
    logger: Any = False
    if cfg.get("logger"):
        where = cfg.logger.get("save_dir"), cfg.logger.get("name")
        if version is None and process_rank() == 0 and None not in where:
            version = claim_version(Path(str(where[0])) / str(where[1]))
        logger = instantiate(cfg.logger, version=version)
    return pl.Trainer(
        **trainer_cfg,
        max_steps=steps,
        max_epochs=epochs,
        accumulate_grad_batches=int(cfg.task.get("accumulate", 1)),
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        use_distributed_sampler=False,  # the datamodule's sampler gives each rank its slice
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )


def auto_precision(accelerator: str) -> str:
    """bf16-mixed where the run lands on a CUDA GPU that has bf16 (as Lightning's "auto" and
    "gpu" accelerators pick CUDA when present), else full float32."""
    cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true"


def claim_version(folder: Path) -> int:
    """Create the next free ``version_N`` under ``folder`` and return N.

    The loggers pick N by listing the folder, so parallel jobs of a sweep that share
    experiment_name and job_name could pick the same one; an exclusive mkdir cannot.
    """
    folder.mkdir(parents=True, exist_ok=True)
    taken = [p.name.removeprefix("version_") for p in folder.glob("version_*")]
    n = max((int(t) for t in taken if t.isdigit()), default=-1) + 1
    while True:
        try:
            (folder / f"version_{n}").mkdir()
            return n
        except FileExistsError:
            n += 1


def process_rank() -> int:
    """This process's DDP rank, known before the trainer starts (Lightning sets it from env)."""
    return int(getattr(rank_zero_only, "rank", 0))


def rank_weight_diff(trainer: pl.Trainer) -> float:
    """Largest difference between any rank's deployable weights and rank 0's (0 under DDP)."""
    module = trainer.lightning_module
    with torch.no_grad(), deployed_weights(run_optimizer(trainer), module):
        flat = torch.cat([p.detach().flatten() for p in module.parameters()])
    # After trainer.test the model is back on the CPU; NCCL gathers only GPU tensors.
    gathered = trainer.strategy.all_gather(flat.to(trainer.strategy.root_device))
    return float((gathered - gathered[0]).abs().max())


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one configuration; return a summary of where things went and final losses.

    Under DDP every process runs this; only rank 0 locks the folder and writes results.

    A run whose results folder says it ended (finished or diverged) is not repeated unless
    ``force``: sweeps can be re-launched and only do what is missing. A run that started and
    did not end (interrupted, killed, failed) resumes from its last checkpoint. A run that
    another process is training (its folder's lock is held) is skipped, so parallel jobs never
    write the same folder, e.g. the same CM run listed once per γ of a grid.
    """
    check_types(cfg)
    directory = run_dir(cfg)
    check_run(cfg, directory)
    for message, category in UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message, category)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(UNACTIONABLE_LOGS)
    logging.getLogger("torch.utils.cpp_extension").addFilter(UNACTIONABLE_LOGS)
    if process_rank() != 0:  # a DDP process that rank 0 launched: it holds the lock
        return _train_locked(cfg, directory)
    lock = FileLock(directory / ".lock")
    try:
        lock.acquire(blocking=False)
    except Timeout:
        skipped = "running in another process; skipped"
        return {"status": skipped, "steps": 0, "results": str(directory), "logs": "-"}
    try:
        return _train_locked(cfg, directory)
    finally:
        lock.release()


def _train_locked(cfg: DictConfig, directory: Path) -> dict[str, Any]:
    done = finished_summary(directory)
    if done is not None and not cfg.force:
        return done
    resume = None if cfg.force else resume_point(directory)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    hp = cfg.task[cfg.optimizer.family]
    datamodule = instantiate(
        cfg.task.data,
        root=cfg.data.root,
        download=cfg.data.download,
        batch_size=hp.batch_size,
        seed=cfg.seed,
    )
    accumulate = int(cfg.task.get("accumulate", 1))
    batches = datamodule.batches_per_epoch()
    steps = cfg.max_steps or hp.get("epochs", cfg.task.epochs) * batches // accumulate
    results = RunResults(directory, write=process_rank() == 0)
    recorder = StepRecorder(
        results, OmegaConf.to_yaml(cfg, resolve=True), cfg.compute_base_model_loss
    )
    epochs = math.ceil(steps * accumulate / batches)
    trainer = make_trainer(cfg, directory, recorder, steps, epochs, resume[1] if resume else None)
    with trainer.init_module():  # in the run's dtype, so a float64 checkpoint loads exactly
        model = instantiate(cfg.task.model)
    module = TrainModule(
        model,
        optimizer_factory(cfg),
        total_steps=steps,
        cosine=cfg.task.cosine,
        cosine_extra=int(cfg.task.get("cosine_extra", 1)),
        two_models=cfg.two_models,
        overshoot=cfg.optimizer.overshoot,
    )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume[0] if resume else None)
    except SystemExit as stop:  # how Lightning ends a fit on Ctrl-C and on SIGTERM
        raise Interrupted(
            f"interrupted at step {trainer.global_step}; results kept in {directory}; "
            "run the same command again to resume"
        ) from stop
    if cfg.checkpoint_every_n_epochs:  # the trained model, at base weights
        trainer.save_checkpoint(last_checkpoint(directory), weights_only=False)
    last_val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    test = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    final = {**last_val, **{k: float(v) for k, v in test.items()}}
    logs = trainer.logger.log_dir if trainer.logger is not None else None
    ranks = {}
    if trainer.world_size > 1:
        ranks = {"world_size": trainer.world_size, "rank_weight_diff": rank_weight_diff(trainer)}
    recorder.finish(trainer, final=final, logs=logs, **ranks)
    summary = {
        "status": recorder.status,
        "steps": trainer.global_step,
        "results": str(directory),
        "logs": logs,
        **final,
    }
    if trainer.logger is not None:
        hparams = {"task": cfg.task.name, "optimizer": optimizer_label(cfg), "seed": cfg.seed}
        metrics = {k: v for k, v in summary.items() if isinstance(v, float) and math.isfinite(v)}
        if isinstance(trainer.logger, TensorBoardLogger):  # the HParams tab pairs them
            trainer.logger.log_hyperparams(hparams, metrics)
        else:
            trainer.logger.log_hyperparams(hparams)
            trainer.logger.log_metrics(metrics, step=trainer.global_step)
        trainer.logger.save()
    return summary
