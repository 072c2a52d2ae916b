"""Capsule network with dynamic routing (Sabour, Frosst & Hinton 2017, https://arxiv.org/abs/1710.09829).

conv1 (ReLU) -> PrimaryCaps (conv, reshaped to 8-D capsules, squashed) -> DigitCaps
(10 capsules of 16 dims) by routing-by-agreement, and a decoder that reconstructs the
image from the digit-capsule poses with all but one capsule masked out.

Paper equations named in the code:
    squash (eq. 1):     v = |s|^2 / (1 + |s|^2) * s / |s|
    predictions (eq. 2): u_hat_{j|i} = W_ij u_i;  s_j = sum_i c_ij u_hat_{j|i}
    coupling (eq. 3):    c_ij = softmax_j(b_ij);  b_ij <- b_ij + u_hat_{j|i} . v_j  (Procedure 1)
    margin loss (eq. 4): L_k = T_k max(0, m+ - |v_k|)^2 + lambda (1 - T_k) max(0, |v_k| - m-)^2
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CapsNetConfig:
    """Architecture of the capsule network (smaller than the paper's so it trains on a CPU)."""

    conv_channels: int = 64
    primary_types: int = 16  # capsule types per grid position (paper: 32)
    primary_dim: int = 8
    n_classes: int = 10
    digit_dim: int = 16
    routing_iters: int = 3
    decoder_hidden: tuple[int, int] = (256, 512)

    @property
    def grid(self) -> int:
        return 6  # 28 -9+1 = 20 -> (20 - 9) // 2 + 1 = 6

    @property
    def n_primary(self) -> int:
        return self.grid * self.grid * self.primary_types


@dataclass
class CapsOutput:
    """Digit-capsule poses and lengths, and the coupling coefficients of every routing iteration."""

    poses: torch.Tensor  # (B, 10, 16)
    lengths: torch.Tensor  # (B, 10)
    routing: torch.Tensor  # (iters, B, n_primary, 10), rows sum to 1 over the 10 digit capsules
    primary: torch.Tensor  # (B, n_primary, 8)


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 1: shrink short vectors to ~0 and long ones to just under unit length."""
    n2 = s.pow(2).sum(dim, keepdim=True)
    return n2 / (1 + n2) * s / torch.sqrt(n2 + eps)


def margin_loss(lengths: torch.Tensor, y: torch.Tensor, m_pos=0.9, m_neg=0.1, lam=0.5) -> torch.Tensor:
    """Eq. 4 summed over classes, mean over the batch."""
    t = F.one_hot(y, lengths.shape[1]).to(lengths.dtype)
    loss = t * F.relu(m_pos - lengths).pow(2) + lam * (1 - t) * F.relu(lengths - m_neg).pow(2)
    return loss.sum(1).mean()


class CapsNet(nn.Module):
    """Capsule network classifier and reconstruction decoder; pixels in [0, 1]."""

    def __init__(self, cfg: CapsNetConfig):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(1, cfg.conv_channels, 9)  # (B, C, 20, 20)
        self.primary = nn.Conv2d(cfg.conv_channels, cfg.primary_types * cfg.primary_dim, 9, stride=2)  # (B, 128, 6, 6)
        # W_ij: one 16x8 matrix per (primary capsule i, digit capsule j)
        self.W = nn.Parameter(0.05 * torch.randn(cfg.n_primary, cfg.n_classes, cfg.digit_dim, cfg.primary_dim))
        h1, h2 = cfg.decoder_hidden
        self.decoder = nn.Sequential(
            nn.Linear(cfg.n_classes * cfg.digit_dim, h1), nn.ReLU(),
            nn.Linear(h1, h2), nn.ReLU(),
            nn.Linear(h2, 784), nn.Sigmoid(),
        )

    def primary_capsules(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> squashed primary capsules (B, n_primary, 8), ordered (y, x, type)."""
        h = self.primary(F.relu(self.conv1(x)))  # (B, types*8, 6, 6)
        B = h.shape[0]
        h = h.view(B, self.cfg.primary_types, self.cfg.primary_dim, 6, 6).permute(0, 3, 4, 1, 2)
        return squash(h.reshape(B, self.cfg.n_primary, self.cfg.primary_dim))

    def route(self, u_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Procedure 1: routing by agreement. u_hat (B, I, J, D) -> v (B, J, D), c per iteration."""
        b = torch.zeros(u_hat.shape[:3], device=u_hat.device, dtype=u_hat.dtype)  # (B, I, J)
        cs = []
        for r in range(self.cfg.routing_iters):
            c = b.softmax(dim=2)  # eq. 3, (B, I, J)
            cs.append(c)
            v = squash(torch.einsum("bij,bijd->bjd", c, u_hat))  # eq. 2 + eq. 1
            if r < self.cfg.routing_iters - 1:
                b = b + torch.einsum("bijd,bjd->bij", u_hat, v)  # agreement
        return v, torch.stack(cs)

    def forward(self, x: torch.Tensor) -> CapsOutput:
        """Digit capsules for (B, 1, 28, 28) pixels."""
        u = self.primary_capsules(x)  # (B, I, 8)
        u_hat = torch.einsum("bie,ijde->bijd", u, self.W)  # eq. 2 in one einsum, (B, I, 10, 16)
        v, c = self.route(u_hat)
        return CapsOutput(poses=v, lengths=v.norm(dim=-1), routing=c, primary=u)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (B, 10): the digit-capsule lengths."""
        return self.forward(x).lengths

    def reconstruct(self, poses: torch.Tensor, mask_class: torch.Tensor | int) -> torch.Tensor:
        """Decode (B, 10, 16) poses with every capsule but ``mask_class`` zeroed -> (B, 1, 28, 28)."""
        B = poses.shape[0]
        if isinstance(mask_class, int):
            mask_class = torch.full((B,), mask_class, device=poses.device, dtype=torch.long)
        mask = F.one_hot(mask_class, self.cfg.n_classes).to(poses.dtype)  # (B, 10)
        return self.decoder((poses * mask[:, :, None]).flatten(1)).view(B, 1, 28, 28)
