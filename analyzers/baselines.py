"""Baselines for attributions: the reference inputs an attribution is measured against."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .params import ParamError


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur images (B, C, H, W) with a Gaussian of ``sigma`` pixels, replicating the border."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    h = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    h = F.conv2d(h, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # blur rows
    h = F.pad(h, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(h, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # blur columns


def heldout_mean_image() -> torch.Tensor:
    """The mean held-out image (1, 28, 28) in [0, 1]."""
    from model_zoo import load_split

    x = load_split().x_heldout.astype(np.float64).mean(0) / 255.0
    return torch.from_numpy(x).float().unsqueeze(0)


def make_baselines(x: torch.Tensor, kind: str, *, draws: int = 1, sigma: float = 4.0, seed: int = 0,
                   custom: torch.Tensor | None = None) -> torch.Tensor:
    """Baselines (k, B, C, H, W) for images x (B, C, H, W); k = draws for uniform noise, else 1."""
    if kind == "black":
        base = torch.zeros_like(x)
    elif kind == "white":
        base = torch.ones_like(x)
    elif kind == "blur":
        base = gaussian_blur(x, sigma)
    elif kind == "heldout_mean":
        if tuple(x.shape[1:]) != (1, 28, 28):
            raise ParamError(f"baseline='heldout_mean' is the mean of the zoo's 28x28 digits and does not fit images "
                             f"of shape {tuple(x.shape[1:])}: choose black, white, blur or uniform")
        base = heldout_mean_image().to(x.device).expand_as(x).clone()
    elif kind == "uniform":
        g = torch.Generator().manual_seed(seed)
        noise = torch.rand((draws, 1, *x.shape[1:]), generator=g).to(x.device)  # the same draws for every example
        return noise.expand(-1, x.shape[0], *x.shape[1:]).clone()
    elif kind == "custom":
        base = _custom(x, custom)
    else:
        raise ParamError(f"unknown baseline {kind!r}")
    return base.unsqueeze(0)


def _custom(x: torch.Tensor, custom: torch.Tensor | None) -> torch.Tensor:
    if custom is None:
        raise ParamError("baseline='custom' needs a baseline tensor; pass baseline_tensor= or choose another baseline")
    b = custom.detach().to(device=x.device, dtype=x.dtype)
    try:
        return b.expand_as(x).clone()
    except RuntimeError:
        raise ParamError(f"the baseline tensor has shape {tuple(custom.shape)}; it must broadcast to the "
                         f"inputs' {tuple(x.shape)}") from None
