"""Many copies of one model trained as one: every parameter stacked along a new first dimension.

Each member is its own model (its own initialization, batches, loss and optimizer state) and
shares nothing with the others but the kernels that compute them: the forward is
``vmap(functional_call)`` over the stacked parameters, and the training loss is the sum of the
members' losses, whose gradient with respect to a member's slice is that member's own gradient.
So an elementwise optimizer (SGD, Adam, SGDO, AdamO, ...) stepping the stacked parameters steps
every member exactly as its own run would, and small models fill the machine.

Members are held in blocks (one tensor per parameter and block), so that an optimizer can give
each block its own hyperparameters as a param group (e.g. γ); one block needs no copying.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from models.base import TaskModel


def _key(name: str) -> str:
    return name.replace(".", ":")  # nn.Module names cannot hold dots


class Members(TaskModel):
    """``models`` side by side, in blocks of ``block_sizes`` members (default: one block).

    In training mode inputs hold one batch per member (members × batch × ...); in evaluation
    mode all members see the same batch. Random layers (VAE sampling, dropout) draw
    independent noise per member.
    """

    skeleton: TaskModel  # the members' layout, on the meta device: not a trained submodule

    def __init__(self, models: list[TaskModel], block_sizes: list[int] | None = None) -> None:
        super().__init__()
        sizes = block_sizes or [len(models)]
        if sum(sizes) != len(models):
            raise ValueError(f"blocks of {sizes} members do not add up to {len(models)}")
        skeleton = copy.deepcopy(models[0]).to("meta")
        object.__setattr__(self, "skeleton", skeleton)
        self.names = [n for n, _ in models[0].named_parameters()]
        self.buffer_names = [n for n, _ in models[0].named_buffers()]
        self.blocks = nn.ModuleList()
        start = 0
        for size in sizes:
            params, buffers = stack_module_state(models[start : start + size])  # type: ignore[arg-type]
            block = nn.Module()
            for name in self.names:
                block.register_parameter(_key(name), nn.Parameter(params[name]))
            for name in self.buffer_names:
                block.register_buffer(_key(name), buffers[name])
            self.blocks.append(block)
            start += size
        self.sizes = sizes

    def __len__(self) -> int:
        return sum(self.sizes)

    def train(self, mode: bool = True) -> Members:
        self.skeleton.train(mode)
        return super().train(mode)

    def block_parameters(self) -> list[list[nn.Parameter]]:
        """Each block's parameters (one param group each)."""
        return [list(block.parameters()) for block in self.blocks]

    def _stacked(self, names: list[str]) -> dict[str, torch.Tensor]:
        def get(block: nn.Module, name: str) -> torch.Tensor:
            value = getattr(block, _key(name))
            assert isinstance(value, torch.Tensor)
            return value

        if len(self.blocks) == 1:
            return {n: get(self.blocks[0], n) for n in names}
        return {n: torch.cat([get(b, n) for b in self.blocks]) for n in names}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = self._stacked(self.names)
        buffers = self._stacked(self.buffer_names)

        def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> Any:
            return functional_call(self.skeleton, (p, b), (x,))

        x_dim = 0 if self.training else None
        out = vmap(one, in_dims=(0, 0, x_dim), randomness="different")(params, buffers, x)
        assert isinstance(out, torch.Tensor)
        return out

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each member's loss (members,)."""
        losses = vmap(self.skeleton.loss, in_dims=(0, 0 if self.training else None))(out, y)
        assert isinstance(losses, torch.Tensor)
        return losses

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each member's metrics, each (members,)."""
        found = vmap(self.skeleton.metrics, in_dims=(0, 0 if self.training else None))(out, y)
        assert isinstance(found, dict)
        return found

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member ``i``'s state dict, keyed as its own model's."""
        b = 0
        while i >= self.sizes[b]:
            i, b = i - self.sizes[b], b + 1
        block = self.blocks[b]
        return {
            n: getattr(block, _key(n))[i].detach().clone() for n in self.names + self.buffer_names
        }
