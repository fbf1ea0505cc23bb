"""Many copies of one model trained as one: every parameter stacked along a new first dimension.

Each member is its own model (its own initialization, batches, loss and optimizer state) and
shares nothing with the others but the kernels that compute them: the forward is
``vmap(functional_call)`` over the stacked parameters, and the training loss is the sum of the
members' losses, whose gradient with respect to a member's slice is that member's own gradient.
So an elementwise optimizer (SGD, Adam, SGDO, AdamO, ...) stepping the stacked parameters steps
every member exactly as its own run would, and small models fill the machine.

Members are held in blocks (one tensor per parameter and block), so that an optimizer can give
each block its own hyperparameters as a param group (e.g. γ); one block needs no copying.

Members that have ended (diverged) stop costing: ``keep`` names the live ones, and the forward
computes those alone (a block whose members all ended is left out, a block with some ended gives its
live slices), so an ended member's slice gets a zero gradient and nothing reads its NaN; every
member-indexed output still has one entry per member, NaN for an ended one. Each member's kernels
are the same whichever others run beside it, so a surviving member's numbers do not change by a bit.
Members that draw noise (``TaskModel.draws_noise``, dropout) draw it jointly, one tensor for all, so
there the ended keep computing: dropping them would change the survivors' noise.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from models import TaskModel


def _key(name: str) -> str:
    return name.replace(".", ":")  # nn.Module names cannot hold dots


ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Identity)


def _plain_layers(skeleton: TaskModel) -> tuple[str, nn.Sequential] | None:
    """(its parameters' name prefix, the layers) where the model says its forward is a plain
    stack of Flatten, Linear and elementwise layers (an MLP); None for any other model."""
    layers = skeleton.member_layers() if isinstance(skeleton, TaskModel) else None  # any Module
    if layers is None or not all(
        isinstance(m, (nn.Flatten, nn.Linear, *ELEMENTWISE)) for m in layers
    ):
        return None
    name = next(n for n, m in skeleton.named_modules() if m is layers)
    return (f"{name}." if name else ""), layers


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
        self.layers = _plain_layers(skeleton)
        self.live: torch.Tensor | None = None  # indices of the members computed; None: all
        # what the forward computes: (block, its live members' indices in it; None: all)
        self.parts: list[tuple[int, torch.Tensor | None]] = [(b, None) for b in range(len(sizes))]

    def keep(self, live: list[int]) -> None:
        """Compute only the members ``live`` from now on (the others have ended), unless the
        members draw noise."""
        if self._noisy():
            live = list(range(len(self)))
        self.live = None if len(live) == len(self) else torch.tensor(live)
        self.parts, start = [], 0
        for b, size in enumerate(self.sizes):
            local = [i - start for i in live if start <= i < start + size]
            if local:
                self.parts.append((b, None if len(local) == size else torch.tensor(local)))
            start += size

    def _noisy(self) -> bool:
        dropout = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
        modules = self.skeleton.modules()
        return self.skeleton.draws_noise or any(isinstance(m, dropout) and m.p > 0 for m in modules)

    def _spread(self, values: torch.Tensor) -> torch.Tensor:
        """One entry per member from the live members' ``values``: NaN (0 if integral) for the
        others."""
        if self.live is None:
            return values
        fill = float("nan") if values.is_floating_point() else 0
        full = values.new_full((len(self), *values.shape[1:]), fill)
        return full.index_copy(0, self.live, values)

    def __len__(self) -> int:
        return sum(self.sizes)

    def train(self, mode: bool = True) -> Members:
        self.skeleton.train(mode)
        return super().train(mode)

    def block_parameters(self) -> list[list[nn.Parameter]]:
        """Each block's parameters (one param group each)."""
        return [list(block.parameters()) for block in self.blocks]

    def _stacked(self, names: list[str]) -> dict[str, torch.Tensor]:
        """The live members' tensors of ``names``, stacked in member order."""

        def get(b: int, local: torch.Tensor | None, name: str) -> torch.Tensor:
            value = getattr(self.blocks[b], _key(name))
            assert isinstance(value, torch.Tensor)
            return value if local is None else value.index_select(0, local)

        if len(self.parts) == 1:
            return {n: get(*self.parts[0], n) for n in names}
        return {n: torch.cat([get(b, i, n) for b, i in self.parts]) for n in names}

    def _place(self, device: torch.device) -> None:
        """Move the live indices to ``device``: ``keep`` may run before the module moved there."""
        if self.live is not None and self.live.device != device:
            self.live = self.live.to(device)
            self.parts = [(b, None if i is None else i.to(device)) for b, i in self.parts]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The live members' outputs (live × ...), in member order."""
        self._place(x.device)
        params = self._stacked(self.names)
        if self.live is not None and self.training:  # one batch per member
            x = x.index_select(0, self.live)
        if self.layers is not None:
            return self._layers_forward(params, x)
        buffers = self._stacked(self.buffer_names)

        def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> Any:
            return functional_call(self.skeleton, (p, b), (x,))

        x_dim = 0 if self.training else None
        out = vmap(one, in_dims=(0, 0, x_dim), randomness="different")(params, buffers, x)
        assert isinstance(out, torch.Tensor)
        return out

    def _layers_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """A plain stack of layers (``TaskModel.member_layers``) as batched matrix products: the
        arithmetic vmap would do, without its per-call work. ``x`` is one batch per member in
        training (members × batch × ...), one batch for all in evaluation."""
        assert self.layers is not None
        prefix, layers = self.layers
        stacked = self.training
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.Flatten):
                x = x.flatten(layer.start_dim + stacked, layer.end_dim)
            elif isinstance(layer, nn.Linear):
                weight = params[f"{prefix}{i}.weight"].transpose(1, 2)
                bias = params.get(f"{prefix}{i}.bias")
                if stacked:
                    x = x.bmm(weight) if bias is None else bias.unsqueeze(1).baddbmm(x, weight)
                else:  # the one batch against every member's weights
                    x = x.matmul(weight) if bias is None else x.matmul(weight) + bias.unsqueeze(1)
                    stacked = True
            else:
                x = layer(x)
        return x

    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        if self.live is not None and self.training:
            return y.index_select(0, self.live)
        return y

    def _stacked_targets(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``y`` as one batch per live member, as the model's ``member_*`` methods take it."""
        y = self._targets(y)
        return y if self.training else y.expand(len(out), *y.shape)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each member's loss (members,); ``out`` is the forward's."""
        direct = self.skeleton.member_losses(out, self._stacked_targets(out, y))
        if direct is not None:
            return self._spread(direct)
        in_dims = (0, 0 if self.training else None)
        losses = vmap(self.skeleton.loss, in_dims=in_dims)(out, self._targets(y))
        assert isinstance(losses, torch.Tensor)
        return self._spread(losses)

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each member's metrics, each (members,)."""
        direct = self.skeleton.member_metrics(out, self._stacked_targets(out, y))
        if direct is not None:
            return {k: self._spread(v) for k, v in direct.items()}
        in_dims = (0, 0 if self.training else None)
        found = vmap(self.skeleton.metrics, in_dims=in_dims)(out, self._targets(y))
        assert isinstance(found, dict)
        return {k: self._spread(v) for k, v in found.items()}

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member ``i``'s state dict, keyed as its own model's."""
        b = 0
        while i >= self.sizes[b]:
            i, b = i - self.sizes[b], b + 1
        block = self.blocks[b]
        return {
            n: getattr(block, _key(n))[i].detach().clone() for n in self.names + self.buffer_names
        }
