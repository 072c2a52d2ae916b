"""Shared fixtures for the analyzer tests: tiny batches of real held-out digits, zoo models, toy models."""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch
from torch import nn

import model_zoo
from model_zoo import InputSpec, ModelSpec

IMAGE_MODELS = [n for n, s in model_zoo.REGISTRY.items() if s.input.modality == "image"]


@lru_cache(maxsize=None)
def untrained(name: str) -> nn.Module:
    """A freshly built zoo model, eval mode, frozen (seeded, so tests are deterministic)."""
    torch.manual_seed(0)
    return model_zoo.build(model_zoo.get_spec(name)).eval().requires_grad_(False)


@lru_cache(maxsize=None)
def trained(name: str) -> nn.Module:
    """The shipped checkpoint of a zoo model; skips the calling test when it is not there yet."""
    spec = model_zoo.get_spec(name)
    if spec.checkpoint_path is not None and not spec.checkpoint_path.exists():
        pytest.skip(f"{name}: no trained checkpoint at {spec.checkpoint_path} yet (run `zooscope train {name}`)")
    return model_zoo.load(name, "cpu")


def trained_or_skip(name: str) -> nn.Module:
    spec = model_zoo.get_spec(name)
    if spec.checkpoint_path is not None and not spec.checkpoint_path.exists():
        pytest.skip(f"{name}: no trained checkpoint at {spec.checkpoint_path} yet (run `zooscope train {name}`)")
    return trained(name)


@lru_cache(maxsize=None)
def minilm() -> nn.Module:
    """The pretrained MiniLM encoder (local files; a couple of seconds to load)."""
    return model_zoo.load("minilm", "cpu")


@pytest.fixture(scope="session")
def digits() -> torch.Tensor:
    """Four held-out digits (4, 1, 28, 28) in [0, 1]."""
    x, _ = model_zoo.load_split().heldout_tensor(4)
    return x


def toy_spec(name: str, shape: tuple[int, ...], value_range=(0.0, 1.0), family: str = "attention",
             capabilities=frozenset({"gradients", "classifier"}), n_classes: int = 1) -> ModelSpec:
    """A spec for a hand-made model with ``scores(x)``: the analyzers treat it like a zoo classifier."""
    return ModelSpec(
        name=name, family=family, task="toy", description="toy model for known answers", paper="",
        input=InputSpec("image", shape, "raw", labels=tuple(str(i) for i in range(n_classes))),
        config=None, builder=lambda cfg: None, capabilities=frozenset(capabilities),
        extra={"value_range": value_range},
    )


class PaperToy(nn.Module):
    """The IG paper's f(x1, x2) = ReLU(ReLU(x1) - 1 - ReLU(x2)) (Sundararajan et al. 2017, section 2)."""

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.relu(x[:, 0]) - 1 - torch.relu(x[:, 1]))[:, None]  # (B, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(x)


class Linear(nn.Module):
    """A linear model on images: scores = W x + b, (B, 1, 28, 28) -> (B, K)."""

    def __init__(self, k: int = 3, seed: int = 0, positive: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(k, 784, generator=g)
        self.lin = nn.Linear(784, k)
        with torch.no_grad():
            self.lin.weight.copy_(w.abs() if positive else w)
            self.lin.bias.copy_(torch.randn(k, generator=g))
        self.requires_grad_(False)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(x)
