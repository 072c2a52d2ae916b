"""Integrated Gradients for text classifiers: which tokens made the model choose a class.

Target = one class's logit (default: the predicted class). Attributions are taken through the
embedding layer the adapter names (``model.embedding_layer``, the word embeddings):

- baselines ``pad`` and ``mask``: captum's LayerIntegratedGradients on that layer, every token but
  the special ones ([CLS], [SEP], <s>, </s>) and padding replaced by the pad (or mask) token id;
- baseline ``zero``: captum's IntegratedGradients on the word embeddings themselves, passed as
  ``inputs_embeds``, from the zero embedding (special tokens and padding keep theirs).

Scores are summed over the embedding dimension per token, with the completeness check of every
IG here: sum(attributions) against F(x) - F(baseline). Paper: https://arxiv.org/abs/1703.01365
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerIntegratedGradients

from .attribution_params import IG_PAPER, TEXT_IG_CPU_BATCH
from .batching import AUTO, Batching
from .completeness import advice, completeness, convergence_delta, trapezoid_scale
from .forward import predictions, resolve_targets, score_labels
from .params import IG_METHODS, ParamError, Params, param, target_param
from .results import AttributionResult
from .run import analysis, halving_on_oom

TEXT_BASELINES = ("pad", "mask", "zero")
TARGET_LABEL = "logit of the target class"
__all__ = ["IG_PAPER", "TEXT_BASELINES", "TextIGParams", "classifier_integrated_gradients", "is_text_classifier",
           "params_class_for"]


@dataclass(frozen=True)
class TextIGParams(Params):
    """Integrated Gradients of a text classifier's class logit through its word embeddings."""

    n_steps: int = param(64, min=2, max=1024, help="Number of steps of the path integral")
    method: str = param("gausslegendre", choices=IG_METHODS, help="Quadrature rule for the path integral")
    baseline: str = param("pad", choices=TEXT_BASELINES, help=(
        "Reference text: pad (every word token -> the pad token), mask (-> the mask token; tokenizers "
        "with one only) or zero (the zero word embedding)"))
    internal_batch_size: int = param(AUTO, min=0, max=1024, help="Interpolated inputs per forward pass; 0: as many "
                                     f"as fit in the memory budget (on the CPU up to {TEXT_IG_CPU_BATCH})")
    target: int = target_param()

    def cost_factors(self) -> dict[str, int]:
        """n_steps path points per text."""
        return {"n_steps": self.n_steps}


def is_text_classifier(spec) -> bool:
    """True for models that classify text (a class per text), as opposed to sentence encoders."""
    return spec.input.modality == "text" and "classifier" in spec.capabilities


def params_class_for(analyzer: str, spec, default: type) -> type:
    """The params class of ``analyzer`` on ``spec``: TextIGParams for IG on a text classifier, else ``default``."""
    return TextIGParams if analyzer == "integrated_gradients" and is_text_classifier(spec) else default


def as_text_params(params) -> TextIGParams:
    """TextIGParams from IGParams (its steps, rule, batch and target; baseline pad) or as given."""
    if isinstance(params, TextIGParams):
        return params
    return TextIGParams(n_steps=params.n_steps, method=params.method, internal_batch_size=params.internal_batch_size,
                        target=params.target)


def _texts(inputs, spec) -> list[str]:
    if isinstance(inputs, str):
        inputs = [inputs]
    ok = isinstance(inputs, (list, tuple)) and inputs and all(isinstance(s, str) and s.strip() for s in inputs)
    if not ok:
        raise ParamError(f"{spec.name} takes a list of non-empty texts")
    return list(inputs)


def _keep(tok, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) True where a token stays as it is in the baseline: special tokens and padding."""
    special = [i for i in (tok.all_special_ids or []) if i not in (tok.mask_token_id,)]
    keep = torch.isin(ids, torch.tensor(special, dtype=ids.dtype, device=ids.device)) if special else \
        torch.zeros_like(ids, dtype=torch.bool)
    return keep | (mask == 0)


def baseline_ids(model, spec, ids: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """The baseline token ids (B, T) for ``pad`` or ``mask``: every word token replaced by that token."""
    tok = model.tokenizer
    token_id = tok.pad_token_id if kind == "pad" else tok.mask_token_id
    if token_id is None:
        other = "zero or mask" if kind == "pad" else "pad or zero"
        raise ParamError(f"baseline={kind!r} needs a {kind} token, and {spec.name}'s tokenizer "
                         f"({type(tok).__name__}) has none: choose baseline {other}")
    return torch.where(_keep(tok, ids, mask), ids, torch.full_like(ids, token_id))


def classifier_integrated_gradients(model, spec, inputs, params) -> AttributionResult:
    """IG of a class logit per token of each text, through the word embeddings, with the completeness check."""
    params = as_text_params(params)
    texts = _texts(inputs, spec)
    with analysis(model, spec, "integrated_gradients", params) as run:
        enc = model.tokenize(texts)
        ids, mask = enc["input_ids"].to(run.device), enc["attention_mask"].to(run.device)  # (B, T)
        with torch.no_grad():
            scores = model.scores(ids, mask)  # (B, K)
        t = resolve_targets(scores, spec, params.target)
        if params.baseline == "zero":
            attr, fb, base = _zero_embedding_ig(model, spec, ids, mask, t, params, run)
        else:
            attr, fb, base = _layer_ig(model, spec, ids, mask, t, params, run)
        if params.method == "riemann_trapezoid":
            attr = attr * trapezoid_scale(params.n_steps)
        tokens = attr.sum(-1) * mask  # (B, T)
        fx = scores.gather(1, t[:, None])[:, 0]
        delta = convergence_delta(tokens, fx, fb)
        return _result(run, spec, model, ids, mask, base, scores, t, fx, fb, delta, tokens, params)


def _batch(run, spec, ids, params, probe) -> int:
    return Batching(run.device, (spec.name, "text-classifier", ids.shape[1])).size(
        params.internal_batch_size, params.n_steps * ids.shape[0], probe, kind="integrated_gradients",
        cpu=TEXT_IG_CPU_BATCH)


def _layer_ig(model, spec, ids, mask, t, params: TextIGParams, run):
    """LayerIntegratedGradients on the word embeddings from the pad/mask baseline ids."""
    base = baseline_ids(model, spec, ids, mask, params.baseline)

    def forward(i: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return model.scores(i, m)  # (B, K)

    lig = LayerIntegratedGradients(forward, model.embedding_layer)

    def probe(n: int):
        return lig.attribute(ids[:1], base[:1], target=t[:1], additional_forward_args=(mask[:1],), n_steps=n,
                             method="gausslegendre", internal_batch_size=n)

    batch = _batch(run, spec, ids, params, probe)
    attr = halving_on_oom(lambda ibs: lig.attribute(
        ids, base, target=t, additional_forward_args=(mask,), n_steps=params.n_steps, method=params.method,
        internal_batch_size=ibs), batch)  # (B, T, D)
    fb = _scores_with_embeddings(model, ids, mask, base).gather(1, t[:, None])[:, 0]
    return attr, fb, base.cpu().numpy().astype(np.int64)


def _scores_with_embeddings(model, ids, mask, base) -> torch.Tensor:
    """F with the word embeddings of ``base`` put in for those of ``ids``, as LayerIntegratedGradients does.

    The rest of the forward pass sees ``ids``: RoBERTa numbers positions by skipping pad tokens, so
    running the baseline ids themselves would move the positions and break completeness.
    """
    layer = model.embedding_layer
    with torch.no_grad():
        replacement = layer(base)
    handle = layer.register_forward_hook(lambda module, args, output: replacement)
    try:
        with torch.no_grad():
            return model.scores(ids, mask)
    finally:
        handle.remove()


def _zero_embedding_ig(model, spec, ids, mask, t, params: TextIGParams, run):
    """IntegratedGradients on inputs_embeds from the zero embedding (special tokens and padding keep theirs)."""
    with torch.no_grad():
        emb = model.embedding_layer(ids)  # (B, T, D)
        keep = _keep(model.tokenizer, ids, mask)[..., None].to(emb.dtype)
        base = emb * keep

    def forward(e: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return model(inputs_embeds=e, attention_mask=m).logits  # (B, K)

    ig = IntegratedGradients(forward)

    def probe(n: int):
        return ig.attribute(emb[:1], base[:1], target=t[:1], additional_forward_args=(mask[:1],), n_steps=n,
                            method="gausslegendre", internal_batch_size=n)

    batch = _batch(run, spec, ids, params, probe)
    attr = halving_on_oom(lambda ibs: ig.attribute(
        emb, base, target=t, additional_forward_args=(mask,), n_steps=params.n_steps, method=params.method,
        internal_batch_size=ibs), batch)
    with torch.no_grad():
        fb = forward(base, mask).gather(1, t[:, None])[:, 0]
    # the baseline as ids: the special tokens and padding kept, -1 where the zero embedding stands
    base_ids = torch.where(keep[..., 0].bool(), ids, torch.full_like(ids, -1))
    return attr, fb, base_ids.cpu().numpy().astype(np.int64)


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype, copy=False)


def _result(run, spec, model, ids, mask, base, scores, t, fx, fb, delta, tokens, params) -> AttributionResult:
    rel, flagged = completeness(fx.double().cpu(), fb.double().cpu(), delta.double().cpu())
    words = tuple(tuple(model.tokenizer.convert_ids_to_tokens(row[: int(m.sum())].tolist()))
                  for row, m in zip(ids.cpu(), mask.cpu()))
    return AttributionResult(
        info=run.info(), attributions=_np(tokens, np.float32), inputs=_np(ids, np.int64), baselines=base,
        targets=_np(t, np.int64), predictions=_np(predictions(scores, spec), np.int64),
        scores=_np(scores, np.float32), f_x=_np(fx, np.float64), f_baseline=_np(fb, np.float64),
        delta=_np(delta, np.float64), rel_error=rel.numpy(), flagged=flagged.numpy(),
        advice=tuple(advice(r, params) if f else "" for r, f in zip(rel.tolist(), flagged.tolist())),
        labels=score_labels(spec, scores.shape[1]), target_label=TARGET_LABEL, tokens=words,
        token_mask=_np(mask, np.int64),
    )
