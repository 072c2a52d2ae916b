"""Capsule-network analyses: lengths, routing coefficients, pose perturbations, reconstructions.

Sabour, Frosst & Hinton 2017, "Dynamic Routing Between Capsules", https://arxiv.org/abs/1710.09829.
Primary capsules are ordered (y, x, type) over the 6x6 grid x 16 types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .params import Params, param, target_param
from .results import CapsuleResult, PoseResult
from .spec import Inputs

CAPSNET_PAPER = "Sabour, Frosst & Hinton 2017, Dynamic Routing Between Capsules, https://arxiv.org/abs/1710.09829"


@dataclass(frozen=True)
class CapsuleParams(Params):
    """Capsule lengths, routing coefficients and reconstructions."""

    target: int = param(-1, min=-1, max=9, help="Class capsule to reconstruct from; -1 = the predicted class")


@dataclass(frozen=True)
class PoseParams(Params):
    """Perturb each dimension of a class capsule's pose and decode (the paper's fig. 4)."""

    steps: int = param(11, min=2, max=41, help="Values per dimension")
    span: float = param(0.25, min=0.01, max=1.0, help="Perturb each dimension from -span to +span")
    target: int = param(-1, min=-1, max=9, help="Class capsule to perturb; -1 = the predicted class")


def capsule_routing(model, spec, inputs: Inputs, params: CapsuleParams = CapsuleParams()) -> CapsuleResult:
    """Capsule lengths, routing coefficients of every iteration, and reconstructions."""
    raise NotImplementedError


def pose_perturbation(model, spec, inputs: Inputs, params: PoseParams = PoseParams()) -> PoseResult:
    """Images decoded with each of the 16 pose dimensions of a class capsule shifted over [-span, span]."""
    raise NotImplementedError
