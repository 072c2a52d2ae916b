"""A classifier measured on the held-out split in the app itself: its predictions, per class, with an interval.

The model card's accuracy is a number recorded at training time; here the shipped checkpoint is
run again on the same named split (behind the usual guards, cached per checkpoint), so the page
can show where the errors fall and how sure the accuracy is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from app.runtime import compute
from app.runtime.models import heldout_split
from app.runtime.results import result_key
from model_zoo.training import heldout_predictions

CONFIDENCE = 0.95


@dataclass(frozen=True)
class HeldoutEvaluation:
    """Predictions on the held-out split and what follows from them."""

    split: str
    labels: tuple[str, ...]
    truth: np.ndarray  # (N,) int64
    predicted: np.ndarray  # (N,) int64

    @property
    def accuracy(self) -> float:
        """The share of held-out images classified right."""
        return float(np.mean(self.predicted == self.truth))

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """The Wilson score interval of the accuracy (on 1,000 images about ±1.4 points at 90 % accuracy)."""
        test = binomtest(int(np.sum(self.predicted == self.truth)), len(self.truth))
        ci = test.proportion_ci(confidence_level=confidence, method="wilson")
        return float(ci.low), float(ci.high)

    def confusion(self) -> np.ndarray:
        """(K, K) counts: row = true class, column = predicted class."""
        k = len(self.labels)
        return np.bincount(self.truth * k + self.predicted, minlength=k * k).reshape(k, k)

    def per_class(self) -> np.ndarray:
        """(K,) accuracy within each true class (recall)."""
        counts = self.confusion()
        return np.diag(counts) / np.maximum(counts.sum(1), 1)


def evaluate(model: str) -> HeldoutEvaluation:
    """The held-out evaluation of zoo classifier ``model`` (cached per checkpoint).

    Raises:
        app.runtime.guards.AnalysisError: the model could not be loaded or run.
    """
    spec = compute.spec_of(model)
    split = heldout_split()

    def key() -> str:
        return result_key(input_sha256=split.sha256, spec=spec, analysis="heldout_evaluation", params={})

    def work(m) -> HeldoutEvaluation:
        predicted = heldout_predictions(m, split)
        return HeldoutEvaluation(split.name, tuple(spec.input.labels), split.y_heldout.astype(np.int64), predicted)

    return compute.run_work(spec, f"Held-out evaluation of {model}", key, work)
