"""Results of the sequence-model analyzers (``analyzers.sequence``).

Flat frozen dataclasses of CPU numpy arrays, like every result in ``analyzers.results`` (which
lists them in ``RESULT_TYPES`` so the store saves them). This module imports nothing from the
package, so ``results`` can import it. Shapes: U output tokens, T input characters, K candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .results import RunInfo


def _floats(a: Any, digits: int = 4) -> list[float | None]:
    return [round(float(v), digits) if math.isfinite(float(v)) else None for v in np.asarray(a).ravel()]


@dataclass(frozen=True)
class SequenceResult:
    """One word decoded greedily: the output tokens, the alignment at test time and in training, step by step.

    ``alignment`` (U, T): soft attention weights (rows sum to 1), or for monotonic attention the
    hard test-time alignment (one 1 per row, or an all-zero row where it attends nowhere).
    ``expected`` (U, T): for monotonic attention the training-time expected alignment (Raffel et
    al. eq. 9-12, without noise) on the decoded output, rows sum to at most 1; for soft, the weights.
    ``positions`` (U,): the attended character (monotonic; -1 = nowhere) or the argmax (soft).
    ``entropy`` (U,): nats of the soft row, or of the expected row renormalised; ``mass`` its sum.
    ``top_tokens`` / ``top_probs`` (U, K): the K likeliest tokens at each step and their probabilities.
    """

    info: RunInfo
    word: str
    attention: str  # "soft" | "monotonic"
    chars: tuple[str, ...]
    outputs: tuple[str, ...]  # output tokens (phones), in decoding order
    alignment: np.ndarray  # (U, T) float32
    expected: np.ndarray  # (U, T) float32
    positions: np.ndarray  # (U,) int64
    entropy: np.ndarray  # (U,) float32
    mass: np.ndarray  # (U,) float32
    top_tokens: np.ndarray  # (U, K) str
    top_probs: np.ndarray  # (U, K) float32
    energy_evaluations: int

    def summary(self) -> dict[str, Any]:
        return {"word": self.word, "attention": self.attention, "output_tokens": list(self.outputs),
                "input_tokens": list(self.chars),
                "alignment_kind": "hard (test time)" if self.attention == "monotonic" else "soft weights",
                "alignment": [_floats(row) for row in self.alignment],
                "positions": [int(p) for p in self.positions], "entropy_nats": _floats(self.entropy),
                "energy_evaluations": int(self.energy_evaluations)}


@dataclass(frozen=True)
class SequenceAttributionResult:
    """Per output token, an attribution over the input characters, and the completeness readout per step.

    ``attributions`` (U, T): summed over the embedding dimension; row i explains ``target`` of
    token i (the log-probability of the emitted token, the output prefix fixed). ``f_x`` / ``f_baseline``
    (U,): that target at the word and at the baseline (every character embedding zero, the
    padding character's); ``delta`` = sum(row) - (f_x - f_baseline), ``rel_error`` = |delta| / |f_x - f_baseline|
    (NaN for methods without a completeness axiom).
    """

    info: RunInfo
    word: str
    attention: str
    method: str
    chars: tuple[str, ...]
    outputs: tuple[str, ...]  # output tokens (phones), in decoding order
    attributions: np.ndarray  # (U, T) float32
    f_x: np.ndarray  # (U,) float32
    f_baseline: np.ndarray  # (U,) float32
    delta: np.ndarray  # (U,) float64
    rel_error: np.ndarray  # (U,) float64
    target: str

    def summary(self) -> dict[str, Any]:
        return {"word": self.word, "attention": self.attention, "method": self.method,
                "output_tokens": list(self.outputs), "input_tokens": list(self.chars),
                "attributions": [_floats(row) for row in self.attributions],
                "f_x": _floats(self.f_x), "f_baseline": _floats(self.f_baseline),
                "delta": _floats(self.delta, 6), "rel_error": _floats(self.rel_error, 6), "target": self.target}
