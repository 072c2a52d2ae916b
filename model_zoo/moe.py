"""Sparsely-gated mixture of experts (Shazeer et al. 2017) in the zoo's ViT digit classifier.

The MoE layer follows "Outrageously Large Neural Networks: The Sparsely-Gated
Mixture-of-Experts Layer" (https://arxiv.org/abs/1701.06538), section 2.1 and appendix A:

- Noisy top-k gating (eq. 3-5), with the noise only while training::

      H(x)_i = (x . W_g)_i + StandardNormal() * Softplus((x . W_noise)_i)
      KeepTopK(v, k)_i = v_i if v_i is among the top k of v, else -inf
      G(x) = Softmax(KeepTopK(H(x), k))
      y = sum_i G(x)_i E_i(x)            (only the k chosen experts are run)

- Balancing losses over a batch X (eq. 6-7 and appendix A, eq. 8-11)::

      Importance(X)_i = sum_{x in X} G(x)_i
      L_importance(X) = w_importance * CV(Importance(X))^2
      P(x, i) = Phi(((x . W_g)_i - kth_excluding(H(x), k, i)) / Softplus((x . W_noise)_i))
      Load(X)_i = sum_{x in X} P(x, i)
      L_load(X) = w_load * CV(Load(X))^2

  where CV = standard deviation / mean (population variance, as in tensor2tensor's
  ``cv_squared``) and Phi is the standard normal CDF.

Every token (49 patches + CLS) of every image in the batch is one x. ``ViTMoE`` is
``model_zoo.vit.ViT`` with the MLP of the blocks named in ``MoEViTConfig.moe_blocks``
replaced by a :class:`MoE` layer; with ``output_routing=True`` it returns each MoE layer's
:class:`Routing` (clean and noisy gate logits, gates, chosen experts, importance, load).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .vit import Block, ViT, ViTConfig, ViTOutput

SHAZEER_PAPER = ("Shazeer et al. 2017, Outrageously Large Neural Networks: The Sparsely-Gated "
                 "Mixture-of-Experts Layer, https://arxiv.org/abs/1701.06538")


@dataclass(frozen=True)
class MoEViTConfig(ViTConfig):
    """The ViT backbone plus its MoE layers: how many experts, top-k, which blocks, loss weights."""

    n_experts: int = 8
    k: int = 2
    moe_blocks: tuple[int, ...] = (2, 3)  # blocks whose MLP is a MoE layer
    expert_dim: int = 128  # hidden width of each expert's feed-forward network
    w_importance: float = 0.1
    w_load: float = 0.1


@dataclass
class Routing:
    """What one MoE layer did to a batch of N = B*T tokens (tensors keep their (B, T, E) shape)."""

    block: int  # index of the Transformer block
    clean_logits: torch.Tensor  # (B, T, E) x . W_g
    logits: torch.Tensor  # (B, T, E) H(x): clean logits, plus noise while training
    gates: torch.Tensor  # (B, T, E) G(x): k non-zeros per row, summing to 1
    topk: torch.Tensor  # (B, T, k) chosen experts, by decreasing gate
    importance: torch.Tensor  # (E,) sum of gates over the batch
    load: torch.Tensor  # (E,) the paper's smooth load estimator sum_x P(x, i)
    loss_importance: torch.Tensor  # () w_importance * CV(importance)^2
    loss_load: torch.Tensor  # () w_load * CV(load)^2


@dataclass
class MoEViTOutput(ViTOutput):
    """ViTOutput plus each MoE layer's routing and the summed balancing losses."""

    routing: tuple[Routing, ...] = ()
    aux_loss: torch.Tensor | None = None


def cv_squared(v: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Squared coefficient of variation, var(v) / mean(v)^2, with the population variance."""
    if v.numel() <= 1:
        return v.new_zeros(())
    return v.var(unbiased=False) / (v.mean() ** 2 + eps)


def keep_top_k(v: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """KeepTopK(v, k): v where v is among the k largest of its row, -inf elsewhere; and the top-k indices."""
    top = v.topk(k, dim=-1)
    kept = torch.full_like(v, float("-inf")).scatter(-1, top.indices, top.values)
    return kept, top.indices


def prob_in_top_k(clean: torch.Tensor, noisy: torch.Tensor, noise_std: torch.Tensor, k: int) -> torch.Tensor:
    """P(x, i) = Phi(((x . W_g)_i - kth_excluding(H(x), k, i)) / Softplus((x . W_noise)_i)), (N, E).

    kth_excluding(H, k, i), the k-th largest of H without H_i, is the (k+1)-th largest of H when
    i is among the top k and the k-th largest otherwise.
    """
    top = noisy.topk(k + 1, dim=-1).values  # (N, k+1)
    if_in, if_out = top[:, k : k + 1], top[:, k - 1 : k]  # (N, 1) each
    is_in = noisy > if_in
    normal = torch.distributions.Normal(clean.new_zeros(()), clean.new_ones(()))
    return torch.where(is_in, normal.cdf((clean - if_in) / noise_std), normal.cdf((clean - if_out) / noise_std))


class MoE(nn.Module):
    """Sparsely-gated MoE layer: n_experts feed-forward networks, each token sent to its top k."""

    def __init__(self, dim: int, hidden: int, n_experts: int, k: int, w_importance: float = 0.1,
                 w_load: float = 0.1, block: int = 0):
        super().__init__()
        if not 1 <= k < n_experts:
            raise ValueError(f"k must be in 1..n_experts-1, got k={k} with {n_experts} experts")
        self.k, self.n_experts, self.block = k, n_experts, block
        self.w_importance, self.w_load = w_importance, w_load
        # The paper initialises W_g and W_noise to zero: no signal and some noise at the start.
        self.w_gate = nn.Parameter(torch.zeros(dim, n_experts))  # W_g
        self.w_noise = nn.Parameter(torch.zeros(dim, n_experts))  # W_noise
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)) for _ in range(n_experts))

    def gate(self, x: torch.Tensor, disabled: tuple[int, ...] = ()) -> Routing:
        """Noisy top-k gating of tokens x (B, T, C); ``disabled`` experts are never chosen (ablation)."""
        B, T, C = x.shape
        flat = x.reshape(B * T, C)
        clean = flat @ self.w_gate  # (N, E) x . W_g
        noise_std = F.softplus(flat @ self.w_noise) + 1e-2  # (N, E) Softplus(x . W_noise), floored
        noisy = clean + torch.randn_like(clean) * noise_std if self.training else clean  # H(x)
        if disabled:
            off = torch.zeros(self.n_experts, dtype=torch.bool, device=x.device)
            off[list(disabled)] = True
            noisy = noisy.masked_fill(off, float("-inf"))
        kept, topk = keep_top_k(noisy, self.k)
        gates = kept.softmax(dim=-1)  # (N, E) G(x): exactly k non-zeros
        importance = gates.sum(0)  # (E,)
        if self.training:
            load = prob_in_top_k(clean, noisy, noise_std, self.k).sum(0)  # (E,) smooth estimator
        else:  # no noise at evaluation: the load is the number of tokens sent to each expert
            load = F.one_hot(topk, self.n_experts).sum((0, 1)).to(x.dtype)
        return Routing(
            self.block, clean.view(B, T, -1), noisy.view(B, T, -1), gates.view(B, T, -1), topk.view(B, T, -1),
            importance, load, self.w_importance * cv_squared(importance), self.w_load * cv_squared(load))

    def forward(self, x: torch.Tensor, disabled: tuple[int, ...] = ()) -> tuple[torch.Tensor, Routing]:
        """y = sum_i G(x)_i E_i(x) over each token's k chosen experts; (B, T, C) and the routing."""
        r = self.gate(x, disabled)
        B, T, C = x.shape
        flat, gates, topk = x.reshape(B * T, C), r.gates.reshape(B * T, -1), r.topk.reshape(B * T, -1)
        y = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):  # sparse dispatch: expert e sees only its tokens
            idx = (topk == e).any(-1).nonzero(as_tuple=True)[0]
            if len(idx):
                y = y.index_add(0, idx, expert(flat[idx]) * gates[idx, e : e + 1])
        return y.view(B, T, C), r


class ViTMoE(ViT):
    """The zoo's ViT with MoE layers in place of the MLPs of ``cfg.moe_blocks``."""

    def __init__(self, cfg: MoEViTConfig):
        super().__init__(cfg)
        bad = [b for b in cfg.moe_blocks if not 0 <= b < cfg.depth]
        if bad:
            raise ValueError(f"moe_blocks {bad} are not blocks of a depth-{cfg.depth} ViT")
        for b in cfg.moe_blocks:
            self.blocks[b].mlp = MoE(cfg.dim, cfg.expert_dim, cfg.n_experts, cfg.k, cfg.w_importance,
                                     cfg.w_load, block=b)

    def forward(self, x: torch.Tensor, output_attentions: bool = False, output_routing: bool = False,
                ablate: dict[int, tuple[int, ...]] | None = None) -> torch.Tensor | MoEViTOutput:
        """Class logits for (B, 1, 28, 28) pixels; with output_attentions/output_routing, a MoEViTOutput.

        ``ablate`` maps a block index to experts its gate may not choose (they are removed from
        the top-k competition, so each token goes to its best remaining experts).
        """
        h = self.patch(self.patchify(x))  # (B, 49, C)
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1) + self.pos  # (B, T, C)
        attns, parts, routing = [], [], []
        for i, block in enumerate(self.blocks):
            h, a, r = _block_forward(block, h, output_attentions, (ablate or {}).get(i, ()))
            attns.append(a.probs)
            parts.append(a.parts)
            if r is not None:
                routing.append(r)
        logits = self.head(self.ln(h[:, 0]))  # (B, n_classes)
        if not (output_attentions or output_routing):
            return logits
        aux = sum((r.loss_importance + r.loss_load for r in routing), logits.new_zeros(()))
        return MoEViTOutput(logits, tuple(attns), tuple(parts), tuple(routing), aux)

    def gate_logits(self, x: torch.Tensor, block: int) -> torch.Tensor:
        """Clean gate logits x . W_g of the MoE layer in ``block`` for every token, (B, T, E)."""
        out = self.forward(x, output_routing=True)
        return next(r.clean_logits for r in out.routing if r.block == block)


def _block_forward(block: Block, x: torch.Tensor, want: bool, disabled: tuple[int, ...]):
    """Block.forward, but a MoE layer also hands back its routing: (x, attention output, routing | None)."""
    a = block.attn(block.ln1(x), want)
    x = x + block.drop(a.out)
    if isinstance(block.mlp, MoE):
        y, r = block.mlp(block.ln2(x), disabled)
        return x + block.drop(y), a, r
    return x + block.drop(block.mlp(block.ln2(x))), a, None


def moe_loss(model: ViTMoE, x: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.05) -> torch.Tensor:
    """Training loss: cross-entropy plus every MoE layer's L_importance + L_load."""
    out = model(x, output_routing=True)
    return F.cross_entropy(out.logits, y, label_smoothing=label_smoothing) + out.aux_loss
