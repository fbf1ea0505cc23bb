"""Checkpoints that a run resumes from exactly and a user deploys from directly.

``state_dict`` holds the base weights θ (what ``torch.load(...)["state_dict"]`` users expect);
the held weights θ′ and the random-number states ride along under their own keys so that a
resumed run continues bit for bit where the interrupted one stopped.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO

from trainers.results import write_atomic

HELD_KEY = "overshoot_held_state_dict"
RNG_KEY = "rng_states"
EPOCH_START_KEY = "saved_at_epoch_start"


def rng_states() -> dict[str, Any]:
    """Every generator a run may draw from, as tensors and numbers (``weights_only``-loadable)."""
    state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    kind, keys, pos, has_gauss, gauss = state
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])


class ResultsCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint files, written as every file of a results folder is
    (``write_atomic``: temporary file, rename, the user's umask)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(Path(path), buffer.getvalue())


def last_checkpoint(directory: Path) -> Path:
    return directory / "checkpoints" / "last.ckpt"


class EpochStartCheckpoint(pl.Callback):
    """Writes the run folder's ``checkpoints/last.ckpt`` (the trainer's ``default_root_dir``;
    overwritten: one checkpoint per run) at the start of every n-th epoch; never at 0.

    At an epoch's start the previous epoch, its validation included, is complete and nothing of
    the new one has run: Lightning resumes such a checkpoint at exactly that point, the sampler
    replays the epoch's order from (seed, epoch), and the random-number states saved here are
    restored here, so a resumed run draws what the uninterrupted one draws.
    """

    def __init__(self, every_n_epochs: int = 1) -> None:
        self.every_n_epochs = every_n_epochs
        self._rng: dict[str, Any] | None = None
        self._at_epoch_start = False  # marks the checkpoints this callback writes

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._rng is not None:  # the first epoch after resuming: this is the saved point
            set_rng_states(self._rng)
            self._rng = None
            return
        epoch, every = trainer.current_epoch, self.every_n_epochs
        if every and epoch > 0 and epoch % every == 0:
            self._at_epoch_start = True
            path = last_checkpoint(Path(trainer.default_root_dir))
            trainer.save_checkpoint(path, weights_only=False)
            self._at_epoch_start = False

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RNG_KEY] = rng_states()
        checkpoint[EPOCH_START_KEY] = self._at_epoch_start

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._rng = checkpoint.get(RNG_KEY)
        if checkpoint.get(EPOCH_START_KEY):
            # Lightning restores the epoch counters of an epoch-start checkpoint correctly but
            # keeps the finished epoch's batch counter, which would end the new epoch at once.
            batches = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]
            batches["current"] = dict.fromkeys(batches["current"], 0)
            batches["is_last_batch"] = False
