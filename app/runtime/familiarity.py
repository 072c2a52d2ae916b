"""Whether an input looks like the digits the models were trained on: its novelty read against the held-out split.

Every upload is scored by the shipped VAE (:func:`analyzers.novelty.novelty_score`: its negative
ELBO in nats, at the posterior mean) and the score is placed among the scores of the 1,000
held-out digits. Above :data:`UNUSUAL_PERCENTILE` of them, the input is *unusual*: the
classifiers were trained on digits like the held-out ones, so their prediction and its
explanation on this input explain a guess. No streamlit here: the command line can ask too.

A low score does not prove an input familiar: likelihood models can score simple inputs (a
thin stroke, a bar) as likelier than real digits (Nalisnick et al. 2019), and clean typeset
digits in a thin font score like handwritten ones although a classifier may misread them;
heavy typeset digits (a bold serif font), noise and filled shapes are flagged.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from analyzers import NoveltyParams
from app.runtime import compute
from app.runtime.memo import once_per_process

# vae-16d, not vae-2d: uploaded noise scores 250-330 nats under it, above every held-out digit (at most 244;
# 99th percentile 186), while under vae-2d noise in colour (319) falls below its own 99th percentile (332).
FAMILIARITY_MODEL = "vae-16d"
# Above the held-out digits' 99th percentile: 1 real digit in 100 is flagged (2.7 % of held-out digits
# uploaded as PNGs, which the resizing of the upload path makes a little less typical).
UNUSUAL_PERCENTILE = 99.0
PARAMS = NoveltyParams()  # the posterior mean: deterministic, so an upload always gets the same score


class Familiarity(NamedTuple):
    """An input's novelty score, where it falls among the held-out digits, and whether that is unusual."""

    score: float  # negative ELBO in nats under the VAE
    percentile: float  # % of held-out digits with a lower score (0 to 100)
    unusual: bool  # score above ``threshold``
    threshold: float  # nats: the held-out scores' UNUSUAL_PERCENTILE-th percentile
    model: str  # the VAE that scored it

    def sentence(self) -> str:
        """The readout for people: the score, its place among the held-out digits, and what it means."""
        than = ("every held-out digit" if self.percentile >= 100
                else f"{math.floor(self.percentile)} % of the held-out digits")  # floored: never overstated
        place = (f"{self.model} gives it a negative ELBO of {self.score:,.0f} nats, higher than {than} "
                 f"(unusual above {self.threshold:,.0f} nats, their {UNUSUAL_PERCENTILE:.0f}th percentile)")
        if self.unusual:
            return (f"Unlike the training digits: {place}. The models have not seen inputs like this, so their "
                    "prediction, and its explanation, explain a guess.")
        return f"Like the training digits: {place}."


@once_per_process()
def heldout_scores(model: str = FAMILIARITY_MODEL) -> np.ndarray:
    """The held-out digits' novelty scores (1,000,) float64, sorted, computed once per process.

    Raises:
        AnalysisError: the VAE could not run (e.g. its checkpoint is missing).
    """
    result = compute.run("novelty", model, PARAMS, None)
    scores = np.sort(np.asarray(result.neg_elbo, dtype=np.float64))
    scores.flags.writeable = False
    return scores


def familiarity(pixels: np.ndarray, model: str = FAMILIARITY_MODEL) -> Familiarity:
    """How an image (28, 28) in [0, 1] compares with the held-out digits under VAE ``model``.

    Raises:
        AnalysisError: the VAE could not run, or the pixels are not an image it takes.
    """
    reference = heldout_scores(model)
    score = float(compute.run("novelty", model, PARAMS, np.asarray(pixels, dtype=np.float32)).neg_elbo[0])
    threshold = float(np.percentile(reference, UNUSUAL_PERCENTILE))
    percentile = 100.0 * np.searchsorted(reference, score, side="left") / reference.size
    return Familiarity(score, float(percentile), score > threshold, threshold, model)
