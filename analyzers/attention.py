"""Attention maps per layer and head for every attention kind, rollouts, CLS maps and head statistics.

- Attention rollout: Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers",
  https://arxiv.org/abs/2005.00928 (average heads, add the residual identity, renormalise rows,
  multiply through the layers).
- Gradient-weighted rollout: Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability",
  https://arxiv.org/abs/2103.15679 (Abar = mean_h (grad * A)^+, R <- R + Abar R).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .params import Params, param, target_param
from .results import AttentionResult, HeadStatsResult
from .spec import Inputs

ROLLOUT_PAPER = "Abnar & Zuidema 2020, Quantifying Attention Flow in Transformers, https://arxiv.org/abs/2005.00928"
CHEFER_PAPER = "Chefer, Gur & Wolf 2021, Generic Attention-model Explainability, https://arxiv.org/abs/2103.15679"
SYNTH_PAPER = "Tay et al. 2020, Synthesizer: Rethinking Self-Attention in Transformer Models, https://arxiv.org/abs/2005.00743"


@dataclass(frozen=True)
class AttentionParams(Params):
    """Attention maps, rollout and gradient-weighted rollout."""

    head_fusion: str = param("mean", choices=("mean", "max", "min"), help="How rollout fuses the heads of a layer")
    gradient_rollout: bool = param(True, help="Also compute the gradient-weighted rollout (Chefer et al. 2021)")
    target: int = target_param()


@dataclass(frozen=True)
class HeadStatsParams(Params):
    """Per-head entropy, mean attention distance and input-dependence over a set of inputs."""

    dependence: str = param("std", choices=("std", "js"), help=(
        "Input-dependence measure: std = mean over query rows of the summed (over keys) standard deviation "
        "across inputs; js = mean pairwise Jensen-Shannon divergence (nats) between inputs' rows"))


def attention_maps(model, spec, inputs: Inputs, params: AttentionParams = AttentionParams()) -> AttentionResult:
    """Attention probabilities of every layer and head, their rollout, and CLS maps for images.

    Images: ``inputs`` (B, 1, 28, 28). MiniLM: a list of sentences. The mixture synthesizer also
    returns its mixing weights and the softmax of each component ("random", "dot").
    """
    raise NotImplementedError


def head_statistics(model, spec, inputs: Inputs, params: HeadStatsParams = HeadStatsParams()) -> HeadStatsResult:
    """Entropy, mean attention distance and input-dependence of every head over a set of inputs."""
    raise NotImplementedError


def rollout(attentions: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout (L, B, H, T, T) -> (B, T, T): fuse heads, add identity, renormalise, multiply."""
    raise NotImplementedError


def gradient_rollout(attentions: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Chefer et al. 2021 relevance (B, T, T) from attentions and their gradients, each (L, B, H, T, T)."""
    raise NotImplementedError
