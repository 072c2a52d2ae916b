"""Results of the generative-model analyzers (``analyzers.generation``): the user's sequence-to-sequence
and causal-LM folders, and the zoo's SmolLM2.

Flat frozen dataclasses of CPU numpy arrays. Token axes: ``source`` are the tokens the model read
(the encoder's input for a sequence-to-sequence model, the prompt for a causal LM), ``prefix`` the
tokens the decoder read before each generated one (for a sequence-to-sequence model its start
token and the generated tokens but the last; for a causal LM the generated tokens but the last,
after the prompt), ``generated`` the N tokens greedy decoding produced. Attribution matrices have
one row per generated token and one column per input token: the source's, then the prefix's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .results import RESULT_TYPES

if TYPE_CHECKING:
    from .results import RunInfo


def _floats(a: Any, digits: int = 6) -> list[float | None]:
    return [round(float(v), digits) if math.isfinite(float(v)) else None for v in np.asarray(a).ravel()]


@dataclass(frozen=True)
class GenerationAttentionResult:
    """Greedy generation from a text, the candidates at every step and the attention of one forward pass.

    ``self_attention`` (L, H, T, T): the decoder's self-attention over source + prefix for a causal LM,
    over the prefix (start token + generated but the last) for a sequence-to-sequence model; rows sum to 1
    and nothing attends to a later position. ``encoder_attention`` (L, H, S, S) and ``cross_attention``
    (L, H, D, S): a sequence-to-sequence model's encoder self-attention and the decoder's attention over
    the source (empty (0, 0, 0, 0) arrays for a causal LM). ``top_tokens`` / ``top_probs`` (N, K): the K
    likeliest tokens at every generation step (the chosen one first, as greedy decoding picks it).
    """

    info: RunInfo
    kind: str  # "seq2seq" | "causal-lm"
    text: str
    source: tuple[str, ...]  # token pieces the model read
    prefix: tuple[str, ...]  # decoder inputs after the source (see the module doc)
    generated: tuple[str, ...]  # the generated token pieces
    generated_text: str  # the generated tokens decoded by the tokenizer
    self_attention: np.ndarray  # (L, H, T, T) float32
    encoder_attention: np.ndarray  # (L, H, S, S) float32, or (0, 0, 0, 0)
    cross_attention: np.ndarray  # (L, H, D, S) float32, or (0, 0, 0, 0)
    top_tokens: np.ndarray  # (N, K) str
    top_probs: np.ndarray  # (N, K) float32

    @property
    def self_tokens(self) -> tuple[str, ...]:
        """The tokens the self-attention rows and columns stand for."""
        return self.prefix if self.kind == "seq2seq" else self.source + self.prefix

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind, "text": self.text, "input_tokens": list(self.source),
            "output_tokens": list(self.generated), "generated_text": self.generated_text,
            "decoder_tokens": list(self.self_tokens), "layers": int(self.self_attention.shape[0]),
            "heads": int(self.self_attention.shape[1]),
            "self_attention": [[np.round(h, 6).tolist() for h in layer] for layer in self.self_attention]}
        if self.kind == "seq2seq":
            out["encoder_attention"] = [[np.round(h, 6).tolist() for h in layer] for layer in self.encoder_attention]
            out["cross_attention"] = [[np.round(h, 6).tolist() for h in layer] for layer in self.cross_attention]
        return out


@dataclass(frozen=True)
class GenerationAttributionResult:
    """Per generated token, Integrated Gradients over the source and the prefix, with completeness per row.

    ``attributions`` (N, S + P): row i explains ``target`` of generated token i (its log-probability or
    logit given everything before it) over the input tokens, summed over the embedding dimension;
    columns the model could not see when it chose token i (later prefix positions) are exactly 0.
    ``f_x`` / ``f_baseline`` (N,): the target at the text and at the baseline (every input embedding
    replaced by the pad token's, or zero), ``delta`` = sum(row) - (f_x - f_baseline), ``rel_error`` =
    |delta| / |f_x - f_baseline|.
    """

    info: RunInfo
    kind: str
    text: str
    source: tuple[str, ...]
    prefix: tuple[str, ...]
    generated: tuple[str, ...]
    generated_text: str
    attributions: np.ndarray  # (N, S + P) float32
    f_x: np.ndarray  # (N,) float32
    f_baseline: np.ndarray  # (N,) float32
    delta: np.ndarray  # (N,) float64
    rel_error: np.ndarray  # (N,) float64
    target: str  # "log_prob" | "logit"
    baseline: str  # "pad" | "zero"

    @property
    def inputs(self) -> tuple[str, ...]:
        """The column tokens: the source, then the prefix."""
        return self.source + self.prefix

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "input_tokens": list(self.source),
                "prefix_tokens": list(self.prefix), "output_tokens": list(self.generated),
                "generated_text": self.generated_text, "target": self.target, "baseline": self.baseline,
                "attributions": [_floats(row, 8) for row in self.attributions],
                "f_x": _floats(self.f_x), "f_baseline": _floats(self.f_baseline), "delta": _floats(self.delta, 8),
                "rel_error": _floats(self.rel_error, 8)}


@dataclass(frozen=True)
class ContrastResult:
    """Why token A rather than B at one generation step: IG of logit(A) - logit(B) over the input tokens.

    ``attributions`` (S + P,): the contrast's attribution (one IG run on the difference); ``fact_attributions``
    and ``foil_attributions`` the two single-logit attributions on the same path, so the contrast equals
    their difference (IG is linear in the function). ``f_x`` / ``f_baseline`` / ``delta`` / ``rel_error``
    are the contrast's completeness readout. The prefix holds the generated tokens before ``step``.
    """

    info: RunInfo
    kind: str
    text: str
    source: tuple[str, ...]
    prefix: tuple[str, ...]
    step: int  # 1-based generation step
    fact: str  # the token piece generated there (or asked for)
    foil: str  # the token piece it is contrasted with
    p_fact: float
    p_foil: float
    attributions: np.ndarray  # (S + P,) float32
    fact_attributions: np.ndarray  # (S + P,) float32
    foil_attributions: np.ndarray  # (S + P,) float32
    f_x: float
    f_baseline: float
    delta: float
    rel_error: float
    baseline: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.source + self.prefix

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "step": self.step, "fact": self.fact, "foil": self.foil,
                "p_fact": round(self.p_fact, 6), "p_foil": round(self.p_foil, 6),
                "input_tokens": list(self.inputs), "attributions": _floats(self.attributions, 8),
                "logit_difference": _floats([self.f_x])[0], "f_baseline": _floats([self.f_baseline])[0],
                "delta": _floats([self.delta], 8)[0], "rel_error": _floats([self.rel_error], 8)[0]}


GENERATION_RESULTS = (GenerationAttentionResult, GenerationAttributionResult, ContrastResult)

# The store rebuilds results by type name from ``analyzers.results.RESULT_TYPES``; these join it here
# (analyzers/results.py belongs to another change in progress: the lead may move them into its literal table).
RESULT_TYPES.update({c.__name__: c for c in GENERATION_RESULTS})
