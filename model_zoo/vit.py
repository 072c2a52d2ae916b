"""ViT-style digit classifier with swappable attention: dot-product or Synthesizer.

One backbone (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"), with the
token-mixing module chosen by ``ViTConfig.attention``:

- ``dot``: scaled dot-product self-attention, softmax(Q K^T / sqrt(d)) V.
- ``dense``: Dense Synthesizer (Tay et al. 2020, https://arxiv.org/abs/2005.00743, eq. 1):
  per head B_i = W2 relu(W1 x_i + b1) + b2, a row of T logits predicted from token i alone.
- ``random``: Random Synthesizer (eq. 3): a learned per-head logits matrix R, input-independent.
- ``factorized``: Factorized Random Synthesizer: R = R1 R2^T with R1, R2 of shape (T, k).
- ``mixture``: Random + dot-product, softmax(a_1 R + a_2 Q K^T / sqrt(d)) with learned
  per-head mixing weights a = softmax(w) (the paper's mixture of synthesizers, eq. 5).

Every kind materialises its attention probabilities (B, heads, T, T) when asked with
``output_attentions=True``; the mixture also returns its mixing weights and each
component's own softmax, so analyzers never reach into internals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_KINDS = ("dot", "dense", "random", "factorized", "mixture")

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of the ViT digit classifier."""

    attention: str = "dot"
    image_size: int = 28
    patch_size: int = 4
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_dim: int = 128
    n_classes: int = 10
    factor_rank: int = 8  # k of the factorized synthesizer
    dropout: float = 0.0

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def n_tokens(self) -> int:
        return self.grid * self.grid + 1  # patches + CLS


@dataclass
class AttentionOutput:
    """What one attention layer returns: mixed values, and probabilities when asked."""

    out: torch.Tensor  # (B, T, C)
    probs: torch.Tensor | None = None  # (B, nh, T, T)
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class ViTOutput:
    """Logits, plus per-layer attention probabilities and mixture parts when asked."""

    logits: torch.Tensor  # (B, n_classes)
    attentions: tuple[torch.Tensor, ...] = ()  # each (B, nh, T, T)
    parts: tuple[dict[str, torch.Tensor], ...] = ()


class _Heads(nn.Module):
    """Shared plumbing: value projection, head split/merge, output projection."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        assert cfg.dim % cfg.heads == 0
        self.nh, self.hs, self.T = cfg.heads, cfg.dim // cfg.heads, cfg.n_tokens
        self.value = nn.Linear(cfg.dim, cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.nh, self.hs).transpose(1, 2)  # (B, nh, T, hs)

    def mix(self, logits: torch.Tensor, x: torch.Tensor, want: bool, **parts) -> AttentionOutput:
        """Softmax the logits over keys, apply them to the values, merge heads."""
        probs = logits.softmax(dim=-1)  # (B|1, nh, T, T)
        v = self.split(self.value(x))  # (B, nh, T, hs)
        y = probs @ v  # (B, nh, T, hs)
        B, T, C = x.shape
        y = self.proj(y.transpose(1, 2).reshape(B, T, C))
        if not want:
            return AttentionOutput(y)
        return AttentionOutput(y, probs.expand(B, -1, -1, -1), parts)


class DotProductAttention(_Heads):
    """Scaled dot-product self-attention (Vaswani et al. 2017)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__(cfg)
        self.qk = nn.Linear(cfg.dim, 2 * cfg.dim)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        q, k = self.qk(x).split(x.shape[-1], dim=2)
        q, k = self.split(q), self.split(k)  # (B, nh, T, hs)
        return (q @ k.transpose(-2, -1)) / math.sqrt(self.hs)  # (B, nh, T, T)

    def forward(self, x: torch.Tensor, want: bool = False) -> AttentionOutput:
        if not want:  # fused kernel: never materialises the weights
            q, k = self.qk(x).split(x.shape[-1], dim=2)
            v = self.split(self.value(x))
            y = F.scaled_dot_product_attention(self.split(q), self.split(k), v)
            B, T, C = x.shape
            return AttentionOutput(self.proj(y.transpose(1, 2).reshape(B, T, C)))
        return self.mix(self.logits(x), x, want)


class DenseSynthesizer(_Heads):
    """Dense Synthesizer: each token predicts its own row of logits, B_i = W2 relu(W1 x_i + b1) + b2."""

    def __init__(self, cfg: ViTConfig):
        super().__init__(cfg)
        self.w1 = nn.Linear(cfg.dim, cfg.dim)  # W1, b1 for every head at once
        self.w2 = nn.Parameter(torch.randn(self.nh, self.hs, self.T) / math.sqrt(self.hs))
        self.b2 = nn.Parameter(torch.zeros(1, self.nh, 1, self.T))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h = self.split(F.relu(self.w1(x)))  # (B, nh, T, hs)
        return torch.einsum("bnth,nhs->bnts", h, self.w2) + self.b2  # (B, nh, T, T)

    def forward(self, x: torch.Tensor, want: bool = False) -> AttentionOutput:
        return self.mix(self.logits(x), x, want)


class RandomSynthesizer(_Heads):
    """Random Synthesizer: a learned (nh, T, T) logits matrix shared by every input."""

    def __init__(self, cfg: ViTConfig):
        super().__init__(cfg)
        self.R = nn.Parameter(torch.randn(1, self.nh, self.T, self.T) * 0.02)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.R  # (1, nh, T, T)

    def forward(self, x: torch.Tensor, want: bool = False) -> AttentionOutput:
        return self.mix(self.logits(x), x, want)


class FactorizedRandomSynthesizer(_Heads):
    """Factorized Random Synthesizer: R = R1 R2^T with rank k per head."""

    def __init__(self, cfg: ViTConfig):
        super().__init__(cfg)
        k = cfg.factor_rank
        self.R1 = nn.Parameter(torch.randn(1, self.nh, self.T, k) / math.sqrt(k))
        self.R2 = nn.Parameter(torch.randn(1, self.nh, self.T, k) / math.sqrt(k))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.R1 @ self.R2.transpose(-2, -1)  # (1, nh, T, T)

    def forward(self, x: torch.Tensor, want: bool = False) -> AttentionOutput:
        return self.mix(self.logits(x), x, want)


class MixtureSynthesizer(_Heads):
    """Random + dot-product synthesizer with learned per-head mixing weights."""

    def __init__(self, cfg: ViTConfig):
        super().__init__(cfg)
        self.random = RandomSynthesizer(cfg)
        self.dot = DotProductAttention(cfg)
        self.mix_logits = nn.Parameter(torch.zeros(self.nh, 2))  # per head: (random, dot)

    def weights(self) -> torch.Tensor:
        return self.mix_logits.softmax(dim=-1)  # (nh, 2)

    def forward(self, x: torch.Tensor, want: bool = False) -> AttentionOutput:
        a = self.weights()[None, :, :, None, None]  # (1, nh, 2, 1, 1)
        r, d = self.random.logits(x), self.dot.logits(x)  # (1|B, nh, T, T)
        logits = a[:, :, 0] * r + a[:, :, 1] * d
        if not want:
            return self.mix(logits, x, want)
        B = x.shape[0]
        parts = {
            "mix_weights": self.weights().detach().expand(B, -1, -1),  # (B, nh, 2)
            "random": r.softmax(-1).expand(B, -1, -1, -1),  # (B, nh, T, T)
            "dot": d.softmax(-1),  # (B, nh, T, T)
        }
        return self.mix(logits, x, want, **parts)


ATTENTION_MODULES: dict[str, type[_Heads]] = {
    "dot": DotProductAttention,
    "dense": DenseSynthesizer,
    "random": RandomSynthesizer,
    "factorized": FactorizedRandomSynthesizer,
    "mixture": MixtureSynthesizer,
}


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attn = ATTENTION_MODULES[cfg.attention](cfg)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, cfg.mlp_dim), nn.GELU(), nn.Linear(cfg.mlp_dim, cfg.dim)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, want: bool = False) -> tuple[torch.Tensor, AttentionOutput]:
        a = self.attn(self.ln1(x), want)
        x = x + self.drop(a.out)
        x = x + self.drop(self.mlp(self.ln2(x)))
        return x, a


class ViT(nn.Module):
    """Digit classifier: 4x4 patches of a 28x28 image (49 tokens) plus CLS, pixels in [0, 1]."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        if cfg.attention not in ATTENTION_MODULES:
            raise ValueError(f"unknown attention kind {cfg.attention!r}; choose from {ATTENTION_KINDS}")
        self.cfg = cfg
        p = cfg.patch_size
        self.patch = nn.Linear(p * p, cfg.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(torch.randn(1, cfg.n_tokens, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.ln = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.n_classes)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) pixels -> (B, 49, 16) normalised patches, row-major over the 7x7 grid."""
        p = self.cfg.patch_size
        x = (x - MNIST_MEAN) / MNIST_STD
        x = F.unfold(x, kernel_size=p, stride=p)  # (B, p*p, 49)
        return x.transpose(1, 2)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (B, 10): the logits."""
        return self.forward(x)

    def forward(self, x: torch.Tensor, output_attentions: bool = False) -> torch.Tensor | ViTOutput:
        """Class logits for (B, 1, 28, 28) pixels; with output_attentions, a ViTOutput."""
        h = self.patch(self.patchify(x))  # (B, 49, C)
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1) + self.pos  # (B, T, C)
        attns, parts = [], []
        for block in self.blocks:
            h, a = block(h, output_attentions)
            attns.append(a.probs)
            parts.append(a.parts)
        logits = self.head(self.ln(h[:, 0]))  # (B, n_classes)
        if not output_attentions:
            return logits
        return ViTOutput(logits, tuple(attns), tuple(parts))
