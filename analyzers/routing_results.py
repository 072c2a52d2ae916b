"""Results of the mixture-of-experts routing analyzers (``analyzers.routing``).

Flat frozen dataclasses of CPU numpy arrays, like every result in ``analyzers.results``
(which lists them in ``RESULT_TYPES`` so the store saves them). This module imports nothing
from the package, so ``results`` can import it. Shapes: B examples, L MoE layers, T tokens
(CLS + 49 patches), E experts, k experts per token, C classes, n top patches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .results import RunInfo

GRID = 7  # patches per side of the 28 x 28 digit (4 x 4 patches)


def token_name(t: int, grid: int = GRID) -> str:
    """'CLS' for token 0, else 'patch (row, col)' of the patch grid."""
    return "CLS" if t == 0 else f"patch ({(t - 1) // grid}, {(t - 1) % grid})"


def _floats(a: Any, digits: int = 6) -> list[float | None]:
    return [round(float(v), digits) if math.isfinite(float(v)) else None for v in np.asarray(a).ravel()]


@dataclass(frozen=True)
class RoutingResult:
    """Which experts every token of each input went to, with their gate weights, per MoE layer."""

    info: RunInfo
    inputs: np.ndarray  # (B, 1, 28, 28)
    blocks: tuple[int, ...]  # (L,) Transformer block of each MoE layer
    experts: np.ndarray  # (B, L, T, k) int64 chosen experts, by decreasing gate weight
    weights: np.ndarray  # (B, L, T, k) float32 their gate weights G(x)_i (sum to 1 over k)
    gates: np.ndarray  # (B, L, T, E) float32 the full gate rows (k non-zeros)
    logits: np.ndarray  # (B, L, T, E) float32 clean gate logits x . W_g
    load: np.ndarray  # (B, L, E) int64 tokens sent to each expert
    importance: np.ndarray  # (B, L, E) float32 sum of each expert's gate weights over the tokens
    scores: np.ndarray  # (B, C) logits
    predictions: np.ndarray  # (B,)
    labels: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        """Per example and MoE layer: the top-k experts and gate weights of every token, and the load per expert."""
        layers = [[{
            "block": int(b), "load": self.load[i, l].tolist(), "importance": _floats(self.importance[i, l], 4),
            "tokens": [{"token": t, "name": token_name(t), "experts": self.experts[i, l, t].tolist(),
                        "gates": _floats(self.weights[i, l, t], 4)} for t in range(self.experts.shape[2])],
        } for l, b in enumerate(self.blocks)] for i in range(len(self.inputs))]
        return {"prediction": self.predictions.tolist(), "k": int(self.experts.shape[-1]),
                "n_experts": int(self.gates.shape[-1]), "layers": layers}


@dataclass(frozen=True)
class ExpertLoadResult:
    """Routing over the held-out set: class x expert load, the paper's balance measures, top patches."""

    info: RunInfo
    blocks: tuple[int, ...]  # (L,)
    labels: tuple[str, ...]  # (C,)
    class_load: np.ndarray  # (L, C, E) share of class c's token assignments that go to expert e (rows sum to 1)
    importance: np.ndarray  # (L, E) Importance(X): sum of gate weights over every held-out token
    load: np.ndarray  # (L, E) Load(X) at evaluation: tokens sent to each expert (no noise)
    cv_importance: np.ndarray  # (L,) coefficient of variation std/mean of importance
    cv_load: np.ndarray  # (L,) coefficient of variation of load
    top_images: np.ndarray  # (L, E, n) int64 held-out index of each expert's most strongly routed patches
    top_tokens: np.ndarray  # (L, E, n) int64 their token (1..49)
    top_gates: np.ndarray  # (L, E, n) float32 their gate weight
    top_crops: np.ndarray  # (L, E, n, 12, 12) float32 the patch with 4 pixels of dimmed context
    accuracy: float  # held-out accuracy of the model on these examples
    n_examples: int

    def summary(self) -> dict[str, Any]:
        """Per MoE layer: load, importance and their coefficients of variation."""
        return {"n_examples": self.n_examples, "accuracy": self.accuracy, "layers": [
            {"block": int(b), "load": _floats(self.load[l], 1), "importance": _floats(self.importance[l], 2),
             "cv_importance": _floats(self.cv_importance[l:l + 1], 4)[0], "cv_load": _floats(self.cv_load[l:l + 1], 4)[0]}
            for l, b in enumerate(self.blocks)]}


@dataclass(frozen=True)
class GateAttributionResult:
    """Integrated Gradients of one gate logit (x . W_g)_e of one token: which pixels sent the patch to expert e."""

    info: RunInfo
    inputs: np.ndarray  # (B, 1, 28, 28)
    baselines: np.ndarray  # (B, 1, 28, 28)
    attributions: np.ndarray  # (B, 1, 28, 28)
    block: int  # the MoE layer's block
    experts: np.ndarray  # (B,) int64 the expert whose gate logit is explained
    tokens: np.ndarray  # (B,) int64 the token (0 = CLS, 1..49 patches)
    chosen: np.ndarray  # (B, k) int64 the experts the token goes to at the input
    gate_weight: np.ndarray  # (B,) float32 G(x)_e at the input (0 when e is not chosen)
    f_x: np.ndarray  # (B,) float64 the gate logit at the input
    f_baseline: np.ndarray  # (B,) float64 at the baseline
    delta: np.ndarray  # (B,) sum(attributions) - (F(x) - F(baseline))
    rel_error: np.ndarray  # (B,) |delta| / |F(x) - F(baseline)|
    flagged: np.ndarray  # (B,) bool rel_error > 5 %
    routing_switches: np.ndarray  # (B,) int64 routing changes along the path in the MoE layers before ``block``
    advice: tuple[str, ...]  # per example, "" unless flagged

    def summary(self) -> dict[str, Any]:
        """Scalars per example: the gate explained, F values, completeness, and routing switches on the path."""
        return {"block": self.block, "expert": self.experts.tolist(),
                "token": [token_name(int(t)) for t in self.tokens], "chosen": self.chosen.tolist(),
                "gate_weight": _floats(self.gate_weight, 4), "f_x": _floats(self.f_x), "f_baseline": _floats(self.f_baseline),
                "delta": _floats(self.delta), "rel_error": _floats(self.rel_error), "flagged": self.flagged.tolist(),
                "routing_switches": self.routing_switches.tolist(), "advice": list(self.advice)}


@dataclass(frozen=True)
class AblationResult:
    """Held-out accuracy per class with one expert of one MoE layer removed from the routing."""

    info: RunInfo
    block: int
    expert: int
    labels: tuple[str, ...]  # (C,)
    counts: np.ndarray  # (C,) int64 held-out images per class
    accuracy_before: np.ndarray  # (C,) float64
    accuracy_after: np.ndarray  # (C,) float64
    overall_before: float
    overall_after: float
    rerouted: float  # share of the layer's tokens that had the expert among their top k
    changed: int  # images whose prediction changed

    def summary(self) -> dict[str, Any]:
        """Accuracy before and after, overall and per class."""
        return {"block": self.block, "expert": self.expert, "overall_before": self.overall_before,
                "overall_after": self.overall_after, "rerouted": round(self.rerouted, 4), "changed": self.changed,
                "per_class_before": _floats(self.accuracy_before, 4), "per_class_after": _floats(self.accuracy_after, 4)}


@dataclass(frozen=True)
class TokenRoutingResult:
    """Which experts every token of each sentence went to in a Hugging Face MoE model (router logits)."""

    info: RunInfo
    tokens: tuple[tuple[str, ...], ...]  # per sentence, its real tokens (padding left out)
    token_mask: np.ndarray  # (B, T) int64: 1 for real tokens
    experts: np.ndarray  # (B, L, T, k) int64 chosen experts, by decreasing router probability
    weights: np.ndarray  # (B, L, T, k) float32 their gate weights as the model uses them
    probs: np.ndarray  # (B, L, T, E) float32 softmax of the router logits
    load: np.ndarray  # (B, L, E) int64 real tokens sent to each expert
    k: int  # experts per token in the model
    model_type: str

    def summary(self) -> dict[str, Any]:
        """Per sentence and MoE layer: the top-k experts and gate weights of every token, and the load per expert."""
        layers = []
        for i, toks in enumerate(self.tokens):
            where = np.flatnonzero(self.token_mask[i])  # positions of the real tokens, in order
            layers.append([{"layer": l, "load": self.load[i, l].tolist(), "tokens": [
                {"token": tok, "experts": self.experts[i, l, t].tolist(), "gates": _floats(self.weights[i, l, t], 4)}
                for tok, t in zip(toks, where)]} for l in range(self.experts.shape[1])])
        return {"model_type": self.model_type, "k": self.k, "n_experts": int(self.probs.shape[-1]), "layers": layers}
