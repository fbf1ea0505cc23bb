"""Convolutional VAE for 28x28 images: latent 8, loss = summed squared error + KL per image."""

from __future__ import annotations

import torch
from torch import nn

from models import TaskModel
from models.conv import CONV_MEMBERS_ON_CPU


class VAE(TaskModel):
    """Targets are the input images. Evaluation decodes the posterior mean (no sampling noise)."""

    slower_as_members_on_cpu = CONV_MEMBERS_ON_CPU
    draws_noise = True  # the reparameterization's sample

    def __init__(self, latent: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),  # 28 → 14
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),  # 14 → 7
            nn.Flatten(), nn.Linear(64 * 7 * 7, 2 * latent),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(latent, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction, mean and log-variance packed in one tensor (B, 784 + 2·latent)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        recon = self.decoder(z).flatten(1)
        return torch.cat([recon, mu, logvar], dim=1)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target = y.flatten(1)
        recon, stats = out[:, : target.shape[1]], out[:, target.shape[1] :]
        mu, logvar = stats.chunk(2, dim=1)
        sse = (recon - target).pow(2).sum(dim=1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
        return (sse + kl).mean()


class VAEv1(VAE):
    """The VAE of arXiv v1 (reference b3ebff9): a third encoder conv (128 channels) to 4 × 4,
    separate μ / log σ² layers, a linear decoder input without activation, transposed convs to
    32 × 32 and a closing linear layer to 28 × 28. Same loss and packing as ``VAE``."""

    def __init__(self, latent: int = 8) -> None:
        nn.Module.__init__(self)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),  # 28 → 14
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),  # 14 → 7
            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),  # 7 → 4
            nn.Flatten(),
        )  # fmt: skip
        self.mu = nn.Linear(128 * 4 * 4, latent)
        self.logvar = nn.Linear(128 * 4 * 4, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, 128 * 4 * 4), nn.Unflatten(1, (128, 4, 4)),
            nn.ConvTranspose2d(128, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 8
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # 16
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1),  # 32
            nn.Flatten(), nn.Linear(32 * 32, 28 * 28), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return torch.cat([self.decoder(z), mu, logvar], dim=1)
