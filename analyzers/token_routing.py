"""Routing per token of Hugging Face mixture-of-experts models that return router logits.

Mixtral, Qwen2-MoE, Switch Transformers and their kin return each MoE layer's router logits
when called with ``output_router_logits=True`` (``router_logits``, one (B*T, E) or (B, T, E)
tensor per MoE layer; ``encoder_router_logits`` for encoder-decoders). This analyzer turns them
into the same view as :func:`analyzers.routing.routing`: per layer, each token's top-k experts
and gate weights, and the load per expert. Gate weights follow the model: softmax over the
experts, top k (``num_experts_per_tok``; Switch: 1), renormalised over the k when the model does
(Mixtral always; Qwen2-MoE when ``norm_topk_prob``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .params import ParamError, Params, param
from .routing_results import TokenRoutingResult
from .run import analysis
from .spec import Inputs

RENORMALISED = ("mixtral",)  # model types whose top-k gate weights always sum to 1


@dataclass(frozen=True)
class TokenRoutingParams(Params):
    """Routing of every token of an MoE language model: its top-k experts and gate weights per layer."""

    top_k: int = param(0, min=0, max=64, help="Experts shown per token; 0 = as many as the model routes to")


def _hf(model) -> Any:
    return getattr(model, "hf", model)


def model_k(config: Any) -> int:
    """How many experts the model sends each token to."""
    if getattr(config, "model_type", "") == "switch_transformers":
        return 1
    k = getattr(config, "num_experts_per_tok", None)
    if not isinstance(k, int) or k < 1:
        raise ParamError(f"{type(config).__name__} names no num_experts_per_tok: it does not look like a top-k MoE")
    return k


def router_logits(model, enc: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Each MoE layer's router logits for a tokenised batch, as (B, T, E) tensors."""
    hf = _hf(model)
    kw: dict[str, Any] = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                          "output_router_logits": True}
    if getattr(hf.config, "is_encoder_decoder", False):
        start = hf.config.decoder_start_token_id or 0
        kw["decoder_input_ids"] = torch.full((enc["input_ids"].shape[0], 1), start, device=enc["input_ids"].device)
    out = hf(**kw)
    logits = getattr(out, "encoder_router_logits", None) or getattr(out, "router_logits", None)
    if not logits:
        raise ParamError(f"{type(hf).__name__} returned no router logits: it has no mixture-of-experts layers")
    B, T = enc["input_ids"].shape
    layers = [t[0] if isinstance(t, tuple) else t for t in logits]
    return [t.reshape(B, T, -1).float() for t in layers if t is not None and t.numel()]


def token_routing(model, spec, inputs: Inputs, params: TokenRoutingParams = TokenRoutingParams()) -> TokenRoutingResult:
    """Per MoE layer, the top-k experts and gate weights of every token, and the load per expert.

    ``inputs``: a list of sentences. Padding tokens are left out of the load.
    """
    if not isinstance(inputs, (list, tuple)) or not inputs or not all(isinstance(s, str) for s in inputs):
        raise ParamError(f"{spec.name} takes sentences: a list of strings")
    with analysis(model, spec, "token_routing", params) as run:
        config = _hf(model).config
        k = model_k(config)
        shown = params.top_k or k
        with torch.no_grad():
            enc = model.tokenize(list(inputs))
            layers = router_logits(model, enc)
        probs = torch.stack([t.softmax(-1) for t in layers], 1)  # (B, L, T, E)
        E = probs.shape[-1]
        if shown > E:
            raise ParamError(f"top_k={shown} is more than the model's {E} experts")
        top = probs.topk(shown, dim=-1)
        weights = top.values
        renorm = getattr(config, "norm_topk_prob", getattr(config, "model_type", "") in RENORMALISED)
        if renorm:
            weights = weights / probs.topk(k, dim=-1).values.sum(-1, keepdim=True)
        mask = enc["attention_mask"].bool()  # (B, T)
        routed = torch.nn.functional.one_hot(top.indices[..., :k], E).sum(-2)  # (B, L, T, E) the model's own k
        load = (routed * mask[:, None, :, None]).sum(2)  # (B, L, E)
        tokenizer = model.tokenizer
        tokens = tuple(tuple(tokenizer.convert_ids_to_tokens(ids[m].tolist())) for ids, m in zip(enc["input_ids"], mask))
        return TokenRoutingResult(
            info=run.info(), tokens=tokens, token_mask=mask.cpu().numpy().astype(np.int64),
            experts=top.indices.cpu().numpy().astype(np.int64), weights=weights.cpu().numpy().astype(np.float32),
            probs=probs.cpu().numpy().astype(np.float32), load=load.cpu().numpy().astype(np.int64), k=k,
            model_type=str(getattr(config, "model_type", "")))
