"""Attention maps per layer and head for every attention kind, rollouts, CLS maps and head statistics.

- Attention rollout: Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers",
  https://arxiv.org/abs/2005.00928 (average heads, add the residual identity, renormalise rows,
  multiply through the layers).
- Gradient-weighted rollout: Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability",
  https://arxiv.org/abs/2103.15679 (Abar = mean_h (grad * A)^+, R <- R + Abar R).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from .forward import image_batch, predictions, resolve_targets
from .params import ParamError, Params, param, target_param
from .results import AttentionResult, HeadStatsResult
from .run import analysis
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
    returns its mixing weights and the softmax of each component ("random", "dot"). The gradient
    rollout explains the target class logit (images) or, for MiniLM, the pooled embedding's
    similarity to itself held constant, sum_d e_d * stop_grad(e_d).
    """
    with analysis(model, spec, "attention_maps", params) as run:
        maps = _forward(model, spec, inputs, run.device, params.target, params.gradient_rollout)
        attn = maps.attentions  # (L, B, H, T, T)
        roll = rollout(attn, params.head_fusion)  # (B, T, T)
        grad = gradient_rollout(attn, maps.gradients) if maps.gradients is not None else None
        image = spec.input.modality == "image"
        side = map_side(spec) if image else 0
        return AttentionResult(
            info=run.info(), kind=_kind(spec), inputs=maps.inputs, attentions=_np(attn), rollout=_np(roll),
            grad_rollout=None if grad is None else _np(grad), predictions=maps.predictions, targets=maps.targets,
            cls_maps=_np(cls_map(attn, side)) if image else None,
            rollout_map=_np(cls_map(roll, side)) if image else None,
            grad_rollout_map=_np(cls_map(grad, side)) if image and grad is not None else None,
            mix_weights=maps.mix_weights, components={k: _np(v) for k, v in maps.components.items()},
            tokens=maps.tokens, token_mask=maps.token_mask,
        )


def head_statistics(model, spec, inputs: Inputs, params: HeadStatsParams = HeadStatsParams()) -> HeadStatsResult:
    """Entropy, mean attention distance and input-dependence of every head over a set of inputs.

    Entropy: nats, mean over query rows (padding excluded) and inputs. Distance: the attention-
    weighted distance from each query to its keys, in patch units on the 7x7 grid (images) or
    token positions (text), with CLS excluded as query and key (patch attention renormalised).
    Input-dependence: ``std`` = mean over query rows of the summed (over keys) standard
    deviation across the inputs, exactly 0 for an input-independent head; ``js`` = mean pairwise
    Jensen-Shannon divergence of the inputs' rows. Text compares the first T_min positions.
    """
    with analysis(model, spec, "head_statistics", params) as run:
        maps = _forward(model, spec, inputs, run.device, -1, False)
        if maps.attentions.shape[1] < 2:
            raise ParamError("head statistics need at least 2 inputs to measure how much a head depends on them")
        mask = _row_mask(maps)  # (B, T)
        stats = _head_stats(maps.attentions, mask, spec, params.dependence)
        components = {f"{stat}/{name}": value for name, comp in maps.components.items()
                      for stat, value in _head_stats(comp, mask, spec, params.dependence).items()}
        return HeadStatsResult(info=run.info(), kind=_kind(spec), n_inputs=int(mask.shape[0]),
                               components=components, **stats)


def rollout(attentions: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout (L, B, H, T, T) -> (B, T, T): fuse heads, add identity, renormalise, multiply.

    Abnar & Zuidema 2020: A~_l = norm(fuse_h A_l + I), rollout = A~_L ... A~_1.
    """
    fused = {"mean": attentions.mean(2), "max": attentions.amax(2), "min": attentions.amin(2)}[head_fusion]
    eye = torch.eye(attentions.shape[-1], dtype=attentions.dtype, device=attentions.device)
    a = fused + eye  # (L, B, T, T)
    a = a / a.sum(-1, keepdim=True)
    out = a[0]
    for layer in a[1:]:
        out = layer @ out
    return out


def gradient_rollout(attentions: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Chefer et al. 2021 relevance (B, T, T) from attentions and their gradients, each (L, B, H, T, T).

    Abar_l = mean_h (grad_l * A_l)^+;  R = I;  R <- R + Abar_l R for l = 1..L.
    """
    abar = (gradients * attentions).clamp(min=0).mean(2)  # (L, B, T, T)
    eye = torch.eye(attentions.shape[-1], dtype=attentions.dtype, device=attentions.device)
    r = eye.expand_as(abar[0]).clone()
    for layer in abar:
        r = r + layer @ r
    return r


MAP_SIDE = 56  # CLS maps of images larger than this are drawn at this side (224x224 would be 50k cells a map)


def map_side(spec) -> int:
    """Side of the CLS maps: the image's (28 for the zoo's digits), at most MAP_SIDE."""
    return min(int(min(spec.input.shape[-2:])), MAP_SIDE)


def patch_grid(tokens: int) -> tuple[int, int]:
    """(prefix tokens, grid side) of a ViT's tokens: CLS (and DeiT's distillation token) before a square grid."""
    for prefix in (1, 2):
        g = math.isqrt(tokens - prefix)
        if g * g == tokens - prefix:
            return prefix, g
    raise ParamError(f"{tokens} tokens are not a class token before a square patch grid: this model's attention "
                     "cannot be drawn over the image")


def cls_map(x: torch.Tensor, size: int = 28) -> torch.Tensor:
    """The CLS row of (..., T, T) maps on the patch grid, upsampled bilinearly: (..., size, size)."""
    prefix, grid = patch_grid(x.shape[-1])
    row = x[..., 0, prefix:]  # (..., 49)
    flat = row.reshape(-1, 1, grid, grid)  # (N, 1, 7, 7)
    up = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
    return up.reshape(*row.shape[:-1], size, size)


# ---------------------------------------------------------------------------------------------

@dataclass
class _Maps:
    """What one analysis forward pass gives: attentions, their gradients, predictions, extras."""

    attentions: torch.Tensor  # (L, B, H, T, T), detached
    gradients: torch.Tensor | None  # (L, B, H, T, T)
    inputs: np.ndarray
    predictions: np.ndarray
    targets: np.ndarray
    components: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (L, B, H, T, T)
    mix_weights: np.ndarray | None = None  # (L, H, 2)
    tokens: tuple[tuple[str, ...], ...] = ()
    token_mask: np.ndarray | None = None  # (B, T)


def _kind(spec) -> str:
    if isinstance(getattr(spec, "extra", None), dict) and spec.extra.get("source"):
        return "softmax"  # a user's Hugging Face model: eager softmax attention
    return getattr(spec.config, "attention", "minilm")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy()


def _call(model, args: tuple, kwargs: dict, need_grad: bool):
    """Run the model; with need_grad through detached, grad-requiring copies of its parameters.

    Input-independent heads (random synthesizers) only join the autograd graph through their
    parameters; functional_call lends grad-requiring views without touching the model.
    """
    if not need_grad:
        with torch.no_grad():
            return model(*args, **kwargs)
    lent = {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}
    with torch.enable_grad():
        return functional_call(model, lent, args, kwargs)


def _forward(model, spec, inputs, device, target: int, need_grad: bool) -> _Maps:
    if spec.input.modality == "text":
        return _text_forward(model, spec, inputs, need_grad, target)
    x = image_batch(inputs, spec, device)
    out = _call(model, (x,), {"output_attentions": True}, need_grad)
    t = resolve_targets(out.logits.detach(), spec, target)
    attn = _stacked(out.attentions, spec)  # (L, B, H, T, T)
    grads = _image_gradients(model, x, t, out) if need_grad else None
    parts = getattr(out, "parts", None)  # the zoo's synthesizers: their components
    comps = {k: torch.stack([p[k] for p in parts]).detach() for k in ("random", "dot") if parts and k in parts[0]}
    mix = np.stack([_np(p["mix_weights"][0]) for p in parts]) if parts and "mix_weights" in parts[0] else None
    return _Maps(attn.detach(), grads, _np(x), predictions(out.logits, spec).cpu().numpy(), t.cpu().numpy(),
                 comps, mix)


def _stacked(attentions: tuple[torch.Tensor, ...], spec) -> torch.Tensor:
    """The layers' attention probabilities as one (L, B, H, T, T) tensor, or why there are none to show."""
    if not attentions:
        raise ParamError(f"{spec.name} returned no attention weights: it has no attention layers to show")
    if len({tuple(a.shape) for a in attentions}) > 1:
        raise ParamError(f"{spec.name}'s layers attend over windows of different sizes (e.g. Swin): its attention "
                         "cannot be drawn as one token-by-token map per layer")
    return torch.stack(attentions)


def _used(attentions: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """The probability tensors the forward pass used: models return them as expanded views."""
    return [a._base if a._base is not None else a for a in attentions]


def _image_gradients(model, x: torch.Tensor, t: torch.Tensor, out) -> torch.Tensor:
    """d logit_target / d A for every layer, (L, B, H, T, T), one row of the batch per example.

    Input-independent heads use one (1, H, T, T) matrix for the whole batch, so their gradient
    is summed over it; then the gradients are taken one example at a time.
    """
    used = _used(out.attentions)
    B = x.shape[0]
    if B > 1 and any(u.shape[0] != B for u in used):
        return torch.cat([_image_gradients(model, x[i:i + 1], t[i:i + 1],
                                           _call(model, (x[i:i + 1],), {"output_attentions": True}, True))
                          for i in range(B)], dim=1)
    score = out.logits.gather(1, t[:, None]).sum()
    grads = torch.autograd.grad(score, used)
    return torch.stack([g.expand(B, -1, -1, -1) for g in grads]).detach()


def _sentences(inputs, spec) -> list[str]:
    if not (isinstance(inputs, (list, tuple)) and inputs and all(isinstance(s, str) and s.strip() for s in inputs)):
        raise ParamError(f"{spec.name} attention takes a list of non-empty sentences")
    return list(inputs)


def _text_forward(model, spec, inputs, need_grad: bool, target: int = -1) -> _Maps:
    enc = model.tokenize(_sentences(inputs, spec))
    ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T)
    out = _call(model, (ids, mask), {"output_attentions": True}, need_grad)
    attn = _stacked(out.attentions, spec)  # (L, B, H, T, T)
    grads, minus = None, np.full(ids.shape[0], -1, dtype=np.int64)
    preds, targets = minus, minus.copy()
    logits = getattr(out, "logits", None)
    if logits is not None:  # a text classifier: the gradient rollout explains the target class's logit
        t = resolve_targets(logits.detach(), spec, target)
        preds, targets = predictions(logits.detach(), spec).cpu().numpy(), t.cpu().numpy()
    if need_grad:
        score = logits.gather(1, t[:, None]).sum() if logits is not None else (out.embeddings * out.embeddings.detach()).sum()
        grads = torch.stack(torch.autograd.grad(score, _used(out.attentions))).detach()
    words = tuple(tuple(model.tokenizer.convert_ids_to_tokens(r[: int(m.sum())].tolist()))
                  for r, m in zip(ids.cpu(), mask.cpu()))
    return _Maps(attn.detach(), grads, ids.cpu().numpy().astype(np.int64), preds, targets,
                 tokens=words, token_mask=mask.cpu().numpy().astype(np.int64))


def _row_mask(maps: _Maps) -> torch.Tensor:
    """Valid query rows (B, T): every token for images, non-padding tokens for text."""
    if maps.token_mask is not None:
        return torch.from_numpy(maps.token_mask).bool()
    L, B, H, T, _ = maps.attentions.shape
    return torch.ones(B, T, dtype=torch.bool)


def _head_stats(attn: torch.Tensor, mask: torch.Tensor, spec, dependence: str) -> dict[str, np.ndarray]:
    a = attn.detach().cpu().double()  # (L, B, H, T, T)
    return {"entropy": entropy(a, mask).numpy(), "distance": mean_distance(a, mask, spec).numpy(),
            "dependence": input_dependence(a, mask, dependence).numpy()}


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (L, B, H, T) over B and the valid rows of mask (B, T) -> (L, H)."""
    m = mask[None, :, None, :].to(values.dtype)
    return (values * m).sum((1, 3)) / m.sum((1, 3))


def entropy(attn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each head's rows, (L, B, H, T, T) -> (L, H), mean over valid rows and inputs."""
    h = -(attn * attn.clamp(min=1e-30).log()).sum(-1)  # (L, B, H, T)
    return _masked_mean(h, mask)


def _positions(spec, T: int) -> torch.Tensor:
    """Coordinates (T-1, d) of every token but CLS: 7x7 patch grid (images) or positions (text)."""
    if spec.input.modality == "image":
        g = math.isqrt(T - 1)
        if g * g != T - 1:  # a distillation token (DeiT) before the grid: it sits at the grid's origin
            prefix, g = patch_grid(T)
            idx = torch.arange(T - prefix)
            grid = torch.stack([idx // g, idx % g], 1).double()
            return torch.cat([torch.zeros(prefix - 1, 2, dtype=torch.float64), grid])
        idx = torch.arange(T - 1)
        return torch.stack([idx // g, idx % g], 1).double()
    return torch.arange(1, T).double()[:, None]


def mean_distance(attn: torch.Tensor, mask: torch.Tensor, spec) -> torch.Tensor:
    """Attention-weighted query-key distance per head, CLS excluded, (L, B, H, T, T) -> (L, H)."""
    T = attn.shape[-1]
    pos = _positions(spec, T)
    dist = torch.cdist(pos, pos)  # (T-1, T-1)
    a = attn[..., 1:, 1:]
    a = a / a.sum(-1, keepdim=True).clamp(min=1e-30)  # renormalise over non-CLS keys
    d = (a * dist).sum(-1)  # (L, B, H, T-1)
    return _masked_mean(d, mask[:, 1:])


def input_dependence(attn: torch.Tensor, mask: torch.Tensor, measure: str = "std") -> torch.Tensor:
    """How much each head's map varies across inputs, (L, B, H, T, T) -> (L, H); 0 when it never does.

    ``std``: mean over query rows of the summed (over keys) standard deviation across inputs.
    ``js``: mean over query rows and input pairs of the Jensen-Shannon divergence (nats).
    Only positions valid in every input (the shortest text) are compared.
    """
    t = int(mask.sum(1).min())
    a = attn[..., :t, :t]  # (L, B, H, t, t)
    if measure == "std":
        return a.std(1, unbiased=False).sum(-1).mean(-1)  # (L, H)
    B = a.shape[1]
    pairs = [(i, j) for i in range(B) for j in range(i + 1, B)]
    js = torch.stack([_js(a[:, i], a[:, j]) for i, j in pairs])  # (P, L, H, t)
    return js.mean((0, -1))


def _js(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (nats) between rows of p and q, (..., T) -> (...)."""
    m = 0.5 * (p + q)

    def kl(a, b):
        return torch.where(a > 0, a * (a.clamp(min=1e-300).log() - b.clamp(min=1e-300).log()), 0.0).sum(-1)
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)
