"""What a run does differently under DDP: which process writes, and the check that the ranks
ended on the same weights."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from trainers.base_weights import deployed_weights, run_optimizer


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
