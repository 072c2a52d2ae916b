"""A two-layer perceptron for 28x28 digits: the example plugin's own model family."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MLPConfig:
    """Sizes of the perceptron."""

    hidden: int = 128
    n_classes: int = 10


class DigitMLP(nn.Module):
    """x (B, 1, 28, 28) in [0, 1] -> logits (B, 10): flatten, Linear 784->hidden, ReLU, Linear hidden->10."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.n_classes))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 10) for digits (B, 1, 28, 28): what zooscope's attribution methods explain."""
        return self.net((x - 0.1307) / 0.3081)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(x)
