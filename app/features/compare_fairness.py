"""Fair comparisons on the Compare page: one colour scale only for columns in the same units, and how much they agree.

The scale rule: two attribution maps share a colour scale only when their values measure the same
thing, the same quantity of the same model output. Integrated Gradients and GradientSHAP (and
SmoothGrad averaging Integrated Gradients) give each pixel a part of F(x) − F(baseline): their maps
add up to the change in the output (completeness), so their values are comparable across methods
and across models with the same kind of output. Saliency gives ∂F/∂pixel, Input x Gradient
pixel × ∂F/∂pixel, Occlusion the drop in F when a window around the pixel is occluded (its size
changes what is measured), SmoothGrad's mean of squares or variance a squared quantity. And F is a
logit for the ViTs, a capsule length for the capsule network, a latent mean for the VAEs. Columns
in different units are each normalised by their own largest |value|. The person can override it.

Agreement: for every pair of columns, the Spearman rank correlation of |attribution| over the pixels
and the overlap of their top 5 % pixels by |attribution|. No streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analyzers.forward import target_label
from app.charts.base import symmetric_max
from model_zoo import get_spec

# The "Colour scale" setting: the rule decides (by units), or the person chose.
SCALES = ("auto", "shared", "per_column")
SCALE_LABELS = {"auto": "automatic (by units)", "shared": "one shared scale", "per_column": "each column its own"}

COMPLETE = "parts of F(x) − F(baseline)"  # maps that add up to the change in the output
TOP_FRACTION = 0.05  # top-k overlap: k is this share of the pixels


# --------------------------------------------------------------------------- the scale rule


def quantity(method: str, params: Any) -> str:
    """What one value of a ``method`` map measures, in words (without the output F)."""
    if method in ("integrated_gradients", "gradient_shap"):
        return COMPLETE
    if method == "saliency":
        return "|∂F/∂pixel|" if params.abs else "∂F/∂pixel"
    if method == "input_x_gradient":
        return "pixel × ∂F/∂pixel"
    if method == "occlusion":
        return f"drop in F when a {params.window}×{params.window} window is occluded"
    if method == "smoothgrad":
        base = COMPLETE if params.base == "integrated_gradients" else "∂F/∂pixel"
        return {"smoothgrad": base, "smoothgrad_sq": f"mean square of {base}", "vargrad": f"variance of {base}"}[
            params.nt_type]
    raise ValueError(f"no unit known for the attribution method {method!r}")


def unit(model: str, method: str, params: Any) -> str:
    """The unit of a column's values in words: the quantity and what F is for ``model``."""
    return f"{quantity(method, params)}, F = {target_label(get_spec(model))}"


@dataclass(frozen=True)
class ScaleChoice:
    """How the columns are coloured: one shared scale or each its own, and why."""

    shared: bool
    setting: str  # one of SCALES
    units: tuple[str, ...]  # per column

    @property
    def same_units(self) -> bool:
        return len(set(self.units)) == 1

    def ranges(self, maps: Sequence[np.ndarray]) -> list[float]:
        """The colour range ±vmax of each column: one for all, or each map's own largest |value|."""
        if self.shared:
            return [symmetric_max(maps)] * len(maps)
        return [symmetric_max([m]) for m in maps]

    def sentence(self, titles: Sequence[str], ranges: Sequence[float]) -> str:
        """The choice in words, for above the columns."""
        if self.shared:
            head = f"One colour scale for every column, ±{ranges[0]:.4g} (the largest |attribution| among them)"
            if self.same_units:
                why = f"they are all in the same units ({self.units[0]}), so equal colours mean equal amounts."
            else:
                why = f"chosen under Colour scale although their units differ ({self._listed(titles)}): the columns " \
                      "with smaller values look washed out."
            return f"{head}: {why}"
        head = f"Each column on its own colour scale, ±its own largest |attribution| ({', '.join(f'{r:.3g}' for r in ranges)})"
        if self.same_units:
            why = (f"chosen under Colour scale; they are in the same units ({self.units[0]}), so one shared scale "
                   "would also compare amounts. Compare where attribution goes, not how much.")
        else:
            why = (f"their units differ ({self._listed(titles)}), so one scale would wash out the columns with "
                   "smaller values. Compare where attribution goes, not how much.")
        return f"{head}: {why}"

    def _listed(self, titles: Sequence[str]) -> str:
        return "; ".join(f"{t}: {u}" for t, u in zip(titles, self.units))


def scale_choice(columns: Sequence[tuple[str, str, Any]], setting: str = "auto") -> ScaleChoice:
    """The colour scale of columns given as (model, method, params): shared when their units agree
    (``setting`` "auto"), or as the person set it ("shared", "per_column")."""
    units = tuple(unit(model, method, params) for model, method, params in columns)
    shared = len(set(units)) == 1 if setting == "auto" else setting == "shared"
    return ScaleChoice(shared, setting, units)


# --------------------------------------------------------------------------- agreement


def top_k(n_pixels: int) -> int:
    """k of the top-k overlap: 5 % of the pixels (39 of 784), at least 1."""
    return max(1, round(TOP_FRACTION * n_pixels))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of |a| and |b| over the pixels where either is non-zero (NaN when undefined).

    Pixels that are exactly 0 in both maps (black pixels under a black-baseline Integrated
    Gradients or Input x Gradient) are 0 whatever the model; as ties they would only measure the
    digit's mask (the same rule as the sanity check's, ``analyzers.faithfulness``).
    """
    from scipy.stats import spearmanr

    a, b = np.abs(np.asarray(a, dtype=np.float64)).ravel(), np.abs(np.asarray(b, dtype=np.float64)).ravel()
    keep = (a != 0) | (b != 0)
    if keep.sum() < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return float("nan")
    return float(spearmanr(a[keep], b[keep]).statistic)


def top_pixels(a: np.ndarray, k: int) -> set[int]:
    """The indices of the ``k`` pixels with the largest |a| (ties: the earlier pixel first)."""
    return set(np.argsort(-np.abs(np.asarray(a, dtype=np.float64)).ravel(), kind="stable")[:k].tolist())


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """|top k of |a| ∩ top k of |b|| / k: 1 when both maps rank the same k pixels highest."""
    return len(top_pixels(a, k) & top_pixels(b, k)) / k


def agreement_table(maps: Sequence[np.ndarray], titles: Sequence[str]) -> pd.DataFrame:
    """One row per pair of columns: Spearman ρ of |attribution| and the top-k overlap."""
    k = top_k(int(np.size(maps[0])))
    rows = [{"columns": f"{titles[i]} vs {titles[j]}", "Spearman ρ": rank_correlation(maps[i], maps[j]),
             f"top-{k} overlap": top_k_overlap(maps[i], maps[j], k)}
            for i in range(len(maps)) for j in range(i + 1, len(maps))]
    return pd.DataFrame(rows, columns=["columns", "Spearman ρ", f"top-{k} overlap"])


def agreement_note(n_pixels: int) -> str:
    """What the agreement numbers are, in words."""
    k = top_k(n_pixels)
    return (f"How much the columns agree on which pixels matter, whatever their units: Spearman ρ ranks the pixels "
            f"by |attribution| (those where either map is non-zero; 1 is the same order, 0 none in common), and "
            f"the top-{k} overlap is the share of each map's {k} highest pixels by |attribution| (the top "
            f"{TOP_FRACTION:.0%} of {n_pixels}) that the other map has in its top {k} too.")
