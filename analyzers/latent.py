"""Latent-space analyses of the VAEs: projections, manifold grid, traversals, interpolation, statistics.

Projections wrap scikit-learn (PCA, t-SNE) and umap-learn (UMAP); fitted embeddings are cached
on disk as .npy files keyed by the sha256 of the data and the params, under
``$ZOOSCOPE_HOME/cache/projections`` (else the platformdirs user cache).
Active units: Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders",
https://arxiv.org/abs/1509.00519 (unit k is active when Cov_x(E_q[z_k]) > 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .params import Params, param
from .results import GridResult, InterpolationResult, LatentStatsResult, ProjectionResult, TraversalResult
from .spec import Inputs

PROJECTIONS = ("identity", "pca", "tsne", "umap")
VAE_PAPER = "Kingma & Welling 2014, Auto-Encoding Variational Bayes, https://arxiv.org/abs/1312.6114"
BURDA_PAPER = "Burda, Grosse & Salakhutdinov 2016, Importance Weighted Autoencoders, https://arxiv.org/abs/1509.00519"
UMAP_PAPER = "McInnes, Healy & Melville 2018, UMAP, https://arxiv.org/abs/1802.03426"
SLERP_PAPER = "White 2016, Sampling Generative Networks, https://arxiv.org/abs/1609.04468"


@dataclass(frozen=True)
class ProjectionParams(Params):
    """Project the posterior means of a data set to 2-D."""

    method: str = param("pca", choices=PROJECTIONS, help="identity (2-D latents only), PCA, t-SNE or UMAP")
    n_neighbors: int = param(15, min=2, max=200, help="UMAP: size of the local neighbourhood")
    min_dist: float = param(0.1, min=0.0, max=1.0, help="UMAP: how tightly points may pack")
    perplexity: float = param(30.0, min=2.0, max=100.0, help="t-SNE: effective number of neighbours")
    seed: int = param(0, min=0, max=2**31 - 1, help="Random seed of t-SNE and UMAP")


@dataclass(frozen=True)
class GridParams(Params):
    """Decode a grid of latent codes over N(0, 1) quantiles in two dimensions (others at 0)."""

    n: int = param(15, min=2, max=40, help="Grid points per side")
    span: float = param(0.9, min=0.1, max=0.998, help="Central probability mass covered by the quantiles")
    dim_x: int = param(0, min=0, max=1023, help="Latent dimension along the columns")
    dim_y: int = param(1, min=0, max=1023, help="Latent dimension along the rows")


@dataclass(frozen=True)
class TraversalParams(Params):
    """Sweep each latent dimension around an input's posterior mean."""

    k: float = param(3.0, min=0.1, max=10.0, help="Sweep from -k to +k prior standard deviations")
    steps: int = param(9, min=2, max=31, help="Images per dimension")


@dataclass(frozen=True)
class InterpolationParams(Params):
    """Interpolate between the posterior means of two inputs."""

    steps: int = param(10, min=2, max=64, help="Images along the path, ends included")


@dataclass(frozen=True)
class LatentStatsParams(Params):
    """KL per dimension, active units and a linear probe on the posterior means."""

    threshold: float = param(0.01, min=0.0, max=10.0, help="Active when Cov_x(E_q[z_k]) exceeds this (Burda et al.)")
    probe_folds: int = param(5, min=2, max=10, help="Cross-validation folds of the linear probe")
    seed: int = param(0, min=0, max=2**31 - 1, help="Seed of the probe's fold split")


def latent_projection(model, spec, inputs: Inputs = None, params: ProjectionParams = ProjectionParams(), *,
                      labels: np.ndarray | None = None) -> ProjectionResult:
    """Encode a data set (default: the held-out split) and project its posterior means to 2-D."""
    raise NotImplementedError


def manifold_grid(model, spec, inputs: Inputs = None, params: GridParams = GridParams()) -> GridResult:
    """Decode a 2-D grid of latent codes at N(0, 1) quantiles (Kingma & Welling 2014, fig. 4)."""
    raise NotImplementedError


def latent_traversal(model, spec, inputs: Inputs, params: TraversalParams = TraversalParams()) -> TraversalResult:
    """Decode each latent dimension swept over +-k prior standard deviations around each input's mean."""
    raise NotImplementedError


def latent_interpolation(model, spec, inputs: Inputs,
                         params: InterpolationParams = InterpolationParams()) -> InterpolationResult:
    """Decode linear and spherical (slerp) interpolations between the means of two inputs."""
    raise NotImplementedError


def latent_statistics(model, spec, inputs: Inputs = None, params: LatentStatsParams = LatentStatsParams(), *,
                      labels: np.ndarray | None = None) -> LatentStatsResult:
    """KL per dimension, active units (Burda et al. 2016) and linear-probe accuracy on the means."""
    raise NotImplementedError


def cache_dir() -> Path:
    """Where fitted projections are cached: $ZOOSCOPE_HOME/cache/projections, else the user cache dir."""
    raise NotImplementedError


def precompute_projections(names: tuple[str, ...] = ("vae-2d", "vae-16d"),
                           methods: tuple[str, ...] = ("pca", "tsne", "umap")) -> list[Path]:
    """Fit and cache the held-out set's projections for the shipped VAEs; returns the cache files."""
    raise NotImplementedError
