"""Integrated Gradients for sentence pairs: which tokens make two sentences similar to a text encoder.

Layer Integrated Gradients on the word embeddings of one sentence, explaining the cosine
similarity of the two sentence embeddings (the other sentence held fixed; baseline: [PAD] tokens),
with the same completeness check as the image methods.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients

from .attribution_params import TEXT_IG_CPU_BATCH, IGParams
from .batching import Batching
from .completeness import advice, completeness, convergence_delta, trapezoid_scale
from .forward import target_label
from .params import ParamError
from .results import AttributionResult
from .run import analysis, halving_on_oom


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype, copy=False)


def _sentence_pairs(inputs, spec) -> list[tuple[str, str]]:
    ok = isinstance(inputs, (list, tuple)) and len(inputs) > 0 and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(s, str) and s.strip() for s in p)
        for p in inputs)
    if not ok:
        raise ParamError(f"{spec.name} attributions take a list of (sentence A, sentence B) pairs of non-empty text")
    return [(a, b) for a, b in inputs]


def _pad_baseline(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A with every token but [CLS]/[SEP] replaced by [PAD]; the mask stays the same."""
    tok = model.tokenizer
    keep = (ids == tok.cls_token_id) | (ids == tok.sep_token_id)
    return torch.where(keep, ids, torch.full_like(ids, tok.pad_token_id))


def word_embeddings(model) -> torch.nn.Module:
    """The layer the attributions go through: the adapter's ``embedding_layer`` (a user's sentence encoder),
    or MiniLM's word embeddings."""
    layer = getattr(model, "embedding_layer", None)
    return layer if layer is not None else model.bert.embeddings.word_embeddings


def _cosine_to(model):
    def forward(ids: torch.Tensor, mask: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cosine_similarity(model(ids, mask).embeddings, other, dim=-1)  # (B,)
    return forward


def text_integrated_gradients(model, spec, inputs, params: IGParams) -> AttributionResult:
    """IG of cos(A, B) per token of each sentence of the pairs in ``inputs``, with the completeness check."""
    pairs = _sentence_pairs(inputs, spec)
    with analysis(model, spec, "integrated_gradients", params) as run:
        enc = model.tokenize([a for a, _ in pairs])
        ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T)
        forward = _cosine_to(model)
        with torch.no_grad():
            other = model.embed([b for _, b in pairs])  # (B, 384), constant
            base = _pad_baseline(model, ids, mask)
            fx, fb = forward(ids, mask, other), forward(base, mask, other)
        lig = LayerIntegratedGradients(forward, word_embeddings(model))

        def probe(n: int):  # one sentence pair, n path points in one pass
            return lig.attribute(ids[:1], base[:1], additional_forward_args=(mask[:1], other[:1]), n_steps=n,
                                 method="gausslegendre", internal_batch_size=n)

        batch = Batching(run.device, (spec.name, ids.shape[1])).size(
            params.internal_batch_size, params.n_steps * ids.shape[0], probe, kind="integrated_gradients",
            cpu=TEXT_IG_CPU_BATCH)
        attr = halving_on_oom(lambda ibs: lig.attribute(
            ids, base, additional_forward_args=(mask, other), n_steps=params.n_steps, method=params.method,
            internal_batch_size=ibs), batch)  # (B, T, 384)
        if params.method == "riemann_trapezoid":
            attr = attr * trapezoid_scale(params.n_steps)
        tokens = attr.sum(-1) * mask  # (B, T), summed over the embedding dimension
        delta = convergence_delta(attr, fx, fb)
        return _text_result(run, spec, model, ids, mask, base, fx, fb, delta, tokens, params)


def _text_result(run, spec, model, ids, mask, base, fx, fb, delta, tokens, params) -> AttributionResult:
    B = ids.shape[0]
    rel, flagged = completeness(fx.double().cpu(), fb.double().cpu(), delta.double().cpu())
    words = tuple(tuple(model.tokenizer.convert_ids_to_tokens(row[: int(m.sum())].tolist()))
                  for row, m in zip(ids.cpu(), mask.cpu()))
    minus = np.full(B, -1, dtype=np.int64)
    return AttributionResult(
        info=run.info(), attributions=_np(tokens, np.float32), inputs=_np(ids, np.int64),
        baselines=_np(base, np.int64), targets=minus, predictions=minus.copy(), scores=_np(fx[:, None], np.float32),
        f_x=_np(fx, np.float64), f_baseline=_np(fb, np.float64), delta=_np(delta, np.float64),
        rel_error=rel.numpy(), flagged=flagged.numpy(),
        advice=tuple(advice(r, params) if f else "" for r, f in zip(rel.tolist(), flagged.tolist())),
        labels=("cosine(A, B)",), target_label=target_label(spec), tokens=words, token_mask=_np(mask, np.int64),
    )
