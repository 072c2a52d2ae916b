"""Convolutional variational autoencoder (Kingma & Welling 2014, https://arxiv.org/abs/1312.6114).

Encoder q(z|x) = N(mu, diag(exp(logvar))), decoder p(x|z) Bernoulli over the 784 pixels,
prior p(z) = N(0, I). The negative ELBO per image is

    -ELBO = BCE(x, decode(z)) + KL(q(z|x) || p(z)),
    KL    = -1/2 * sum_k (1 + logvar_k - mu_k^2 - exp(logvar_k))   (closed form, Appendix B)

in nats, summed over pixels and latent dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of the convolutional VAE."""

    latent_dim: int = 16
    channels: int = 32
    hidden: int = 192


@dataclass
class VAEOutput:
    """Reconstruction logits and the posterior's parameters."""

    recon_logits: torch.Tensor  # (B, 1, 28, 28)
    mu: torch.Tensor  # (B, D)
    logvar: torch.Tensor  # (B, D)
    z: torch.Tensor  # (B, D)


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent dimension, (B, D), in nats."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


class VAE(nn.Module):
    """Conv encoder 28->14->7, Gaussian latent, transposed-conv decoder; pixels in [0, 1]."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        c, h = cfg.channels, cfg.hidden
        self.enc = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1), nn.ReLU(),  # (B, c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ReLU(),  # (B, 2c, 7, 7)
            nn.Flatten(), nn.Linear(2 * c * 49, h), nn.ReLU(),
        )
        self.to_mu, self.to_logvar = nn.Linear(h, cfg.latent_dim), nn.Linear(h, cfg.latent_dim)
        self.dec_fc = nn.Sequential(nn.Linear(cfg.latent_dim, h), nn.ReLU(), nn.Linear(h, 2 * c * 49), nn.ReLU())
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.ReLU(),  # (B, c, 14, 14)
            nn.ConvTranspose2d(c, 1, 4, 2, 1),  # (B, 1, 28, 28) logits
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each (B, D), for (B, 1, 28, 28) pixels."""
        h = self.enc(x)
        return self.to_mu(h), self.to_logvar(h).clamp(-12.0, 8.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits (B, 1, 28, 28) for latent codes (B, D)."""
        h = self.dec_fc(z).view(-1, 2 * self.cfg.channels, 7, 7)
        return self.dec(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Expected pixels in [0, 1], (B, 1, 28, 28), for latent codes (B, D)."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, sample z = mu + sigma * eps (reparameterisation), decode."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + (0.5 * logvar).exp() * eps
        return VAEOutput(self.decode_logits(z), mu, logvar, z)


def negative_elbo(x: torch.Tensor, out: VAEOutput) -> torch.Tensor:
    """Per-image negative ELBO in nats, (B,): Bernoulli reconstruction term plus closed-form KL."""
    rec = F.binary_cross_entropy_with_logits(out.recon_logits, x, reduction="none").flatten(1).sum(1)
    return rec + kl_per_dim(out.mu, out.logvar).sum(1)
