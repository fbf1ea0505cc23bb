"""Small convolutional classifiers of the paper: 2c2d (Fashion-MNIST) and 3c3d (CIFAR-10)."""

from __future__ import annotations

import torch
from torch import nn

from models import TaskModel

# Convolutions are bound by arithmetic on a CPU whether batched over members or not, so members
# only add vmap's overhead there: vectorize=true trains them apart (README, Many seeds: Throughput).
CONV_MEMBERS_ON_CPU = (
    "conv members ran 0.73× (2c2d) and 0.84× (VAE) as fast as separate runs side by side "
    "on a 2-core CPU"
)


class Classifier(TaskModel):
    """Cross-entropy on logits, accuracy as metric."""

    net: nn.Module
    slower_as_members_on_cpu = CONV_MEMBERS_ON_CPU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out, y)

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"accuracy": (out.argmax(dim=1) == y).float().mean()}


class TwoConvTwoDense(Classifier):
    """conv3x3 c1 → pool → conv3x3 c2 → pool → fc h → classes (log-softmax + NLL = CE).

    (c1, c2, h) = (16, 32, 64) now; (32, 64, 256) at arXiv v1.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 64,
    ) -> None:
        super().__init__()
        side, (c1, c2) = image_size // 4, channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )  # fmt: skip


class ThreeConvThreeDense(Classifier):
    """conv5x5 64 valid, conv3x3 96 valid, conv3x3 128 same (each ReLU + pool 2); fc 512-256-C."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 64, 5), nn.ReLU(), nn.MaxPool2d(2),  # 32 → 28 → 14
            nn.Conv2d(64, 96, 3), nn.ReLU(), nn.MaxPool2d(2),  # 14 → 12 → 6
            nn.Conv2d(96, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 6 → 6 → 3
            nn.Flatten(), nn.Linear(128 * 3 * 3, 512), nn.ReLU(),
            nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, num_classes),
        )  # fmt: skip


class ResNet(Classifier):
    """torchvision ResNet-18/50 from scratch (``depth`` 18 or 50)."""

    vectorizes = "its BatchNorm layers keep batch statistics"

    def __init__(self, depth: int = 18, num_classes: int = 100) -> None:
        super().__init__()
        import torchvision

        builders = {18: torchvision.models.resnet18, 50: torchvision.models.resnet50}
        if depth not in builders:
            raise ValueError(f"unknown ResNet depth {depth}; valid: 18, 50")
        self.net = builders[depth](num_classes=num_classes)
