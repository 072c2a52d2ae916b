"""How each model family is run for analysis: its score function, targets, predictions and labels.

Classifiers (ViT, CapsNet) expose ``scores(x) -> (B, 10)`` (logits, capsule lengths); VAEs are
explained through their posterior means, ``encode(x)[0] -> (B, D)``. An analyzer explains one
column of these scores per example: the target.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .params import ParamError

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def score_fn(model: nn.Module, spec) -> ScoreFn:
    """The function F whose columns are explained: (B, C, H, W) -> (B, K) (the zoo's digits: (B, 1, 28, 28))."""
    if spec.family == "vae":
        return lambda x: model.encode(x)[0]  # (B, D) posterior means
    return model.scores  # (B, 10) logits or capsule lengths


def target_label(spec) -> str:
    """What the explained score is, in words."""
    if spec.family == "vae":
        return "posterior mean mu_k of the target latent dimension"
    if spec.family == "capsule":
        return "length of the target class capsule"
    if spec.input.modality == "text" and "classifier" in spec.capabilities:
        return "logit of the target class"
    if spec.input.modality == "text":
        return "cosine similarity of sentence A's pooled embedding to sentence B's"
    return "logit of the target class"


def score_labels(spec, k: int) -> tuple[str, ...]:
    """Names of the K score columns: class labels, or z0..z{D-1} for latents."""
    if spec.family == "vae":
        return tuple(f"z{i}" for i in range(k))
    return tuple(spec.input.labels) or tuple(str(i) for i in range(k))


def predictions(scores: torch.Tensor, spec) -> torch.Tensor:
    """Predicted class per example (B,) for classifiers; -1 for models that do not classify."""
    if "classifier" in spec.capabilities:
        return scores.argmax(1)
    return torch.full(scores.shape[:1], -1, dtype=torch.long, device=scores.device)


def resolve_targets(scores: torch.Tensor, spec, target: int) -> torch.Tensor:
    """Target column per example (B,): the given index, or with -1 the predicted class (VAEs: largest |mu|)."""
    k = scores.shape[1]
    if target >= k:
        what = "latent dimension" if spec.family == "vae" else "class"
        raise ParamError(f"target={target} is not a {what} of {spec.name}: choose -1 or 0 to {k - 1}")
    if target >= 0:
        return torch.full(scores.shape[:1], target, dtype=torch.long, device=scores.device)
    if spec.family == "vae":
        return scores.abs().argmax(1)
    return scores.argmax(1)


def image_batch(inputs, spec, device: torch.device) -> torch.Tensor:
    """Check that inputs are a float batch (B, *spec.input.shape) in range and move it to the device.

    The range is [0, 1] (pixels) unless ``spec.extra["value_range"]`` says otherwise (toy models).
    """
    shape = tuple(spec.input.shape)
    if not isinstance(inputs, torch.Tensor):
        raise ParamError(f"{spec.name} takes images: a float tensor (B, {', '.join(map(str, shape))}) in [0, 1]")
    if inputs.dim() == len(shape) + 2 and inputs.shape[1] == 1:  # the app's (B, 1, C, H, W) for (B, C, H, W) arrays
        inputs = inputs[:, 0]
    x = inputs.unsqueeze(0) if tuple(inputs.shape) == shape else inputs
    if tuple(x.shape[1:]) != shape or x.shape[0] == 0:
        raise ParamError(f"{spec.name} takes images of shape (B, {', '.join(map(str, shape))}), got {tuple(inputs.shape)}")
    x = x.detach().to(device=device, dtype=torch.float32)
    lo, hi = spec.extra.get("value_range", (0.0, 1.0))
    if not torch.isfinite(x).all() or x.min() < lo or x.max() > hi:
        raise ParamError(f"{spec.name} takes values in [{lo:g}, {hi:g}] (pixels scaled to 0..1); "
                         f"these range from {x.min():.3g} to {x.max():.3g}")
    return x
