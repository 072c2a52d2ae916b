"""Capsule-network analyses: lengths, routing coefficients, pose perturbations, reconstructions.

Sabour, Frosst & Hinton 2017, "Dynamic Routing Between Capsules", https://arxiv.org/abs/1710.09829.
Primary capsules are ordered (y, x, type) over the 6x6 grid x 16 types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .forward import image_batch
from .params import Params, param
from .results import CapsuleResult, PoseResult
from .run import analysis
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
    """Capsule lengths, routing coefficients of every iteration, and reconstructions.

    Routing coefficients c_ij (eq. 3) sum to 1 over the 10 digit capsules for each primary
    capsule i; the grid view averages them over the 16 primary types at each of the 6x6
    positions, the type view over the positions.
    """
    with analysis(model, spec, "capsule_routing", params) as run:
        x = image_batch(inputs, spec, run.device)
        with torch.no_grad():
            out = model(x)
            pred = out.lengths.argmax(1)  # (B,)
            target = pred if params.target < 0 else torch.full_like(pred, params.target)
            recon_pred = model.reconstruct(out.poses, pred)[:, 0]  # (B, 28, 28)
            recon_target = model.reconstruct(out.poses, target)[:, 0]
        cfg = model.cfg
        iters, B = out.routing.shape[:2]
        c = out.routing.view(iters, B, cfg.grid, cfg.grid, cfg.primary_types, cfg.n_classes)  # (y, x, type) order
        return CapsuleResult(
            info=run.info(), inputs=_np(x), lengths=_np(out.lengths), predictions=_np(pred), targets=_np(target),
            routing=_np(out.routing), routing_grid=_np(c.mean(4)), routing_types=_np(c.mean((2, 3))),
            primary_lengths=_np(out.primary.norm(dim=-1).view(B, cfg.grid, cfg.grid, cfg.primary_types)),
            recon_predicted=_np(recon_pred), recon_target=_np(recon_target), labels=tuple(spec.input.labels),
        )


def pose_perturbation(model, spec, inputs: Inputs, params: PoseParams = PoseParams()) -> PoseResult:
    """Images decoded with each of the 16 pose dimensions of a class capsule shifted over [-span, span].

    The paper's fig. 4: each row is one dimension of the target capsule's pose, each column an
    offset added to it; every other capsule is masked out by the decoder.
    """
    with analysis(model, spec, "pose_perturbation", params) as run:
        x = image_batch(inputs, spec, run.device)
        offsets = torch.linspace(-params.span, params.span, params.steps, device=run.device)  # (S,)
        with torch.no_grad():
            out = model(x)
            target = out.lengths.argmax(1) if params.target < 0 else torch.full((x.shape[0],), params.target,
                                                                                   device=run.device)
            images = torch.stack([_perturbed(model, out.poses[i], int(target[i]), offsets)
                                  for i in range(x.shape[0])])  # (B, 16, S, 28, 28)
        return PoseResult(info=run.info(), inputs=_np(x), targets=_np(target), offsets=_np(offsets).astype(np.float64),
                          images=_np(images))


def reconstruct_with_offsets(model, spec, inputs: Inputs, target: int, offsets) -> np.ndarray:
    """The digit (28, 28) decoded from class capsule ``target`` of one input with ``offsets`` (16,) added to its pose.

    Every other capsule is masked out, as in the paper's reconstructions (Sabour et al. 2017);
    this is what the Capsules page's 16 pose sliders show.
    """
    device = next(model.parameters()).device
    x = image_batch(inputs, spec, device)[:1]  # (1, 1, 28, 28)
    shift = torch.as_tensor(np.asarray(offsets, dtype=np.float32), device=device)  # (16,)
    with torch.no_grad():
        poses = model(x).poses.clone()  # (1, 10, 16)
        poses[0, target] += shift.to(poses.dtype)
        image = model.reconstruct(poses, target)[0, 0]  # (28, 28)
    return _np(image).astype(np.float32)


def _perturbed(model, poses: torch.Tensor, target: int, offsets: torch.Tensor) -> torch.Tensor:
    """Decode one example's poses (10, 16) with each dim of capsule ``target`` shifted: (16, S, 28, 28)."""
    n_dim, S = poses.shape[1], offsets.shape[0]
    batch = poses.expand(n_dim, S, *poses.shape).clone()  # (16, S, 10, 16)
    dims = torch.arange(n_dim, device=poses.device)
    batch[dims, :, target, dims] += offsets  # dim d of row d moves
    images = model.reconstruct(batch.view(n_dim * S, *poses.shape), target)  # (16 * S, 1, 28, 28)
    return images.view(n_dim, S, 28, 28)


def _np(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return t.numpy().astype(np.int64) if not t.is_floating_point() else t.float().numpy()
