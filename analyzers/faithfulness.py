"""Faithfulness checks of attributions: deletion/insertion curves and the model-randomisation test.

- Deletion and insertion: Petsiuk, Das & Saenko 2018, "RISE", https://arxiv.org/abs/1806.07421.
- Model randomisation: Adebayo et al. 2018, "Sanity Checks for Saliency Maps",
  https://arxiv.org/abs/1810.03292 (cascading re-initialisation from the top layer down,
  Spearman rank correlation with the trained model's attributions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .attribution import ATTRIBUTION_METHODS
from .params import Params, baseline_param, param, target_param
from .results import AttributionResult, CurvesResult, RandomisationResult
from .spec import Inputs

RISE_PAPER = "Petsiuk, Das & Saenko 2018, RISE, https://arxiv.org/abs/1806.07421"
SANITY_PAPER = "Adebayo et al. 2018, Sanity Checks for Saliency Maps, https://arxiv.org/abs/1810.03292"
_METHODS = tuple(ATTRIBUTION_METHODS)


@dataclass(frozen=True)
class CurveParams(Params):
    """Deletion and insertion curves of an attribution against random orderings."""

    attribution: str = param("integrated_gradients", choices=_METHODS, help="Attribution method ordering the units")
    unit: str = param("pixel", choices=("pixel", "patch"), help="Delete single pixels or 4x4 patches")
    steps: int = param(28, min=2, max=784, help="Points on each curve after the start")
    baseline: str = baseline_param()
    blur_sigma: float = param(4.0, min=0.5, max=14.0, help="Standard deviation in pixels of the blur baseline")
    random_seeds: int = param(3, min=1, max=20, help="Random orderings averaged over")
    target: int = target_param()


@dataclass(frozen=True)
class RandomisationParams(Params):
    """Model-randomisation sanity check: re-initialise layers from the top, compare attributions."""

    attribution: str = param("integrated_gradients", choices=_METHODS, help="Attribution method checked")
    n_steps: int = param(32, min=2, max=1024, help="IG steps (only for methods with a path integral)")
    max_layers: int = param(0, min=0, max=256, help="Stop after this many cascade steps; 0 = all layers")
    target: int = target_param()
    seed: int = param(0, min=0, max=2**31 - 1, help="Seed of the re-initialisation")


def deletion_insertion(model, spec, inputs: Inputs, params: CurveParams = CurveParams(), *,
                       attributions: AttributionResult | np.ndarray | None = None) -> CurvesResult:
    """Deletion and insertion curves and their areas, against a random ordering (mean over seeds)."""
    raise NotImplementedError


def randomisation_check(model, spec, inputs: Inputs,
                        params: RandomisationParams = RandomisationParams()) -> RandomisationResult:
    """Spearman correlation of attributions of the trained model and of cumulatively randomised copies."""
    raise NotImplementedError
