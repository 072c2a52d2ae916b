"""Faithfulness checks of attributions: deletion/insertion curves and the model-randomisation test.

- Deletion and insertion: Petsiuk, Das & Saenko 2018, "RISE", https://arxiv.org/abs/1806.07421.
- Model randomisation: Adebayo et al. 2018, "Sanity Checks for Saliency Maps",
  https://arxiv.org/abs/1810.03292 (cascading re-initialisation from the top layer down,
  Spearman rank correlation with the trained model's attributions).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .attribution import ATTRIBUTION_METHODS, attribute_with_targets
from .baselines import make_baselines
from .forward import image_batch, resolve_targets, score_fn
from .params import ParamError, Params, baseline_param, field_specs, param, target_param
from .results import AttributionResult, CurvesResult, RandomisationResult
from .run import analysis
from .spec import Inputs

RISE_PAPER = "Petsiuk, Das & Saenko 2018, RISE, https://arxiv.org/abs/1806.07421"
SANITY_PAPER = "Adebayo et al. 2018, Sanity Checks for Saliency Maps, https://arxiv.org/abs/1810.03292"
_METHODS = tuple(ATTRIBUTION_METHODS)
PATCH = 4  # side of a patch unit, the ViT's patch size


@dataclass(frozen=True)
class CurveParams(Params):
    """Deletion and insertion curves of an attribution against random orderings."""

    attribution: str = param("integrated_gradients", choices=_METHODS, help="Attribution method ordering the units")
    unit: str = param("pixel", choices=("pixel", "patch"), help="Delete single pixels or patches (4x4 on 28x28 "
                      "digits, 1/14 of the shorter side on other images)")
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

    def cost_factors(self) -> dict[str, int]:
        """n_steps path points of the attribution it re-runs on every re-initialised model."""
        return {"n_steps": self.n_steps}


def deletion_insertion(model, spec, inputs: Inputs, params: CurveParams = CurveParams(), *,
                       attributions: AttributionResult | np.ndarray | None = None) -> CurvesResult:
    """Deletion and insertion curves and their areas, against a random ordering (mean over seeds).

    Units (pixels or 4x4 patches) are ranked by attribution, most positive first. Deletion
    replaces them by the baseline one step at a time from the input (a faithful map makes F
    fall fast: low area); insertion puts them back onto the baseline (high area). F is the
    same target score the attribution explains (logit, capsule length, mu_k); given an
    AttributionResult, its targets are used. Without ``attributions``, they are computed with
    ``params.attribution`` at its default params.
    """
    with analysis(model, spec, "deletion_insertion", params) as run:
        x = image_batch(inputs, spec, run.device)  # (B, C, H, W)
        f = score_fn(model, spec)
        _check_curve_work(x.shape[0], params)
        if isinstance(attributions, AttributionResult):  # explain what that attribution explained
            t = torch.from_numpy(attributions.targets).to(run.device)
        else:
            with torch.no_grad():
                t = resolve_targets(f(x), spec, params.target)
        attr = _attributions(model, spec, x, t, params.attribution, attributions)
        base = make_baselines(x, params.baseline, sigma=params.blur_sigma, draws=1)[0]
        units = _unit_scores(attr, params.unit)  # (B, U)
        fractions = np.linspace(0.0, 1.0, params.steps + 1)
        order = units.argsort(1, descending=True)  # (B, U)
        curves = _curves(f, x, base, t, order, fractions, params.unit)
        randoms = [_curves(f, x, base, t, _random_order(units.shape, seed, x.device), fractions, params.unit)
                   for seed in range(params.random_seeds)]
        rnd_del = np.mean([r[0] for r in randoms], 0)
        rnd_ins = np.mean([r[1] for r in randoms], 0)
        return CurvesResult(
            info=run.info(), attribution_method=params.attribution, unit=params.unit, fractions=fractions,
            deletion=curves[0], insertion=curves[1], random_deletion=rnd_del, random_insertion=rnd_ins,
            deletion_auc=auc(fractions, curves[0]), insertion_auc=auc(fractions, curves[1]),
            random_deletion_auc=auc(fractions, rnd_del), random_insertion_auc=auc(fractions, rnd_ins),
            targets=t.cpu().numpy().astype(np.int64),
        )


MAX_CURVE_EVALUATIONS = 1 << 18  # forward passes per call: images x points x 2 curves x (1 + seeds)


def _check_curve_work(n_images: int, params: CurveParams) -> None:
    work = n_images * (params.steps + 1) * 2 * (1 + params.random_seeds)
    if work > MAX_CURVE_EVALUATIONS:
        raise ParamError(f"{n_images} images x {params.steps + 1} points x 2 curves x {1 + params.random_seeds} "
                         f"orderings = {work:,} model evaluations, more than the {MAX_CURVE_EVALUATIONS:,} allowed; "
                         f"lower steps or random_seeds, or send fewer images")


def auc(fractions: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Area under each curve (B, K) over fractions (K,) in [0, 1], by the trapezoid rule -> (B,)."""
    return np.trapezoid(curves, fractions, axis=-1)


def _attributions(model, spec, x, t, method: str, given) -> torch.Tensor:
    """The attribution maps (B, 1, 28, 28) on x's device: given, or computed for targets t."""
    if given is None:
        params = ATTRIBUTION_METHODS[method].params()
        return torch.from_numpy(attribute_with_targets(model, spec, x, method, params, t).attributions).to(x.device)
    a = given.attributions if isinstance(given, AttributionResult) else np.asarray(given)
    if tuple(a.shape) != tuple(x.shape):
        raise ParamError(f"attributions of shape {tuple(a.shape)} do not match the inputs' {tuple(x.shape)}")
    return torch.as_tensor(a, dtype=torch.float32, device=x.device)


def patch_side(size: tuple[int, int]) -> int:
    """Side of a patch unit in pixels: 4 on the zoo's 28x28 digits (the ViT's patch), else 1/14 of the shorter
    side (16 on 224x224, ViT-B/16's patch)."""
    return PATCH if tuple(size) == (28, 28) else max(1, round(min(size) / 14))


def _grid(size: tuple[int, int], unit: str) -> tuple[int, int]:
    p = 1 if unit == "pixel" else patch_side(size)
    return math.ceil(size[0] / p), math.ceil(size[1] / p)


def _unit_scores(attr: torch.Tensor, unit: str) -> torch.Tensor:
    """Attribution per unit (B, U), summed over channels: per pixel (H*W), or summed per patch (49 on 28x28)."""
    a = attr.sum(1, keepdim=True)  # (B, 1, H, W)
    if unit == "pixel":
        return a.flatten(1)
    size = tuple(a.shape[-2:])
    gh, gw = _grid(size, unit)
    if size == (28, 28):
        return F.avg_pool2d(a, PATCH).flatten(1) * PATCH * PATCH
    return F.adaptive_avg_pool2d(a, (gh, gw)).flatten(1) * (size[0] * size[1] / (gh * gw))


def _unit_masks(order: torch.Tensor, counts: list[int], unit: str, size: tuple[int, int] = (28, 28)) -> torch.Tensor:
    """Masks (B, K, 1, H, W), 1 where one of the first counts[k] units of ``order`` lies."""
    B, U = order.shape
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(U, device=order.device).expand(B, -1))  # rank of every unit
    n = torch.tensor(counts, device=order.device)
    masks = (rank[:, None, :] < n[None, :, None]).float()  # (B, K, U)
    gh, gw = _grid(size, unit)
    masks = masks.view(B * len(counts), 1, gh, gw)
    if unit == "patch":
        masks = F.interpolate(masks, size=size, mode="nearest")
    return masks.view(B, len(counts), 1, *size)


def _curves(f, x, base, t, order, fractions, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves (B, K) for one ordering of the units."""
    U = order.shape[1]
    counts = [int(round(fr * U)) for fr in fractions]
    m = _unit_masks(order, counts, unit, tuple(x.shape[-2:]))  # (B, K, 1, H, W)
    xe, be = x[:, None], base[:, None]
    deleted = xe * (1 - m) + be * m
    inserted = be * (1 - m) + xe * m
    return _scores(f, deleted, t), _scores(f, inserted, t)


def _scores(f, images: torch.Tensor, t: torch.Tensor) -> np.ndarray:
    """F(images)[target] for images (B, K, C, H, W) -> (B, K)."""
    B, K = images.shape[:2]
    flat, tt = images.flatten(0, 1), t.repeat_interleave(K)
    with torch.no_grad():
        out = torch.cat([f(flat[i:i + 256]).gather(1, tt[i:i + 256, None])[:, 0] for i in range(0, len(flat), 256)])
    return out.view(B, K).double().cpu().numpy()


def _random_order(shape: tuple[int, int], seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(shape[1], generator=g) for _ in range(shape[0])]).to(device)


# ---------------------------------------------------------------------------------------------

def randomisation_check(model, spec, inputs: Inputs, params: RandomisationParams = RandomisationParams(), *,
                        on_step: Callable[[int, int], None] | None = None) -> RandomisationResult:
    """Spearman correlation of attributions of the trained model and of cumulatively randomised copies.

    Layers are the parameter groups the target depends on ("head", "blocks.3", ..., "pos"),
    ordered from the output down by their distance to it in the autograd graph; parameters the
    target does not use (a VAE's decoder) are left out. Each step re-initialises one more group
    of a deep copy (reset_parameters, or a normal draw with the original tensor's std) and
    recomputes the attributions for the trained model's targets. The correlation is of absolute
    attributions, over pixels where either map is non-zero. The given model is not modified.
    ``on_step(done, total)`` hears of each cascade step as it finishes (for a progress bar).
    """
    with analysis(model, spec, "randomisation_check", params) as run:
        x = image_batch(inputs, spec, run.device)
        method, mparams = params.attribution, _method_params(params)
        trained = attribute_with_targets(model, spec, x, method, mparams, _targets(model, spec, x, params))
        t = torch.from_numpy(trained.targets).to(run.device)
        groups = layer_groups(model, spec, x)
        if params.max_layers:
            groups = groups[: params.max_layers]
        copy = copy_module(model)
        maps, rhos = [], []
        for i, (name, names) in enumerate(groups):
            reinitialise(copy, names, params.seed + i)
            a = attribute_with_targets(copy, spec, x, method, mparams, t).attributions
            maps.append(a)
            rhos.append([_spearman(trained.attributions[b], a[b]) for b in range(len(a))])
            if on_step is not None:
                on_step(i + 1, len(groups))
        return RandomisationResult(
            info=run.info(), attribution_method=method, layers=tuple(n for n, _ in groups),
            spearman=np.asarray(rhos, dtype=np.float64), attributions=trained.attributions,
            randomised=np.stack(maps), targets=trained.targets,
        )


def _targets(model, spec, x, params: RandomisationParams) -> torch.Tensor:
    with torch.no_grad():
        return resolve_targets(score_fn(model, spec)(x), spec, params.target)


def _method_params(params: RandomisationParams):
    cls = ATTRIBUTION_METHODS[params.attribution].params
    return cls(n_steps=params.n_steps) if "n_steps" in {f.name for f in field_specs(cls)} else cls()


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of |a| and |b| over the pixels where either is non-zero.

    Pixels that are exactly 0 in both maps (black pixels under a black-baseline IG or Input x
    Gradient) are zero whatever the weights; as ties they would only measure the input's mask.
    """
    from scipy.stats import spearmanr

    a, b = np.abs(a).ravel(), np.abs(b).ravel()
    keep = (a != 0) | (b != 0)
    if keep.sum() < 3:
        return float("nan")
    rho = spearmanr(a[keep], b[keep]).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def copy_module(model: nn.Module) -> nn.Module:
    """A deep copy of the model (same device, same frozen flags) that can be changed freely."""
    return copy.deepcopy(model)


def _group_of(name: str) -> str:
    """The layer a parameter belongs to: its first name component, with a list index if any.

    Hugging Face models behind an adapter (``hf.vit.encoder.layer.3.attention...``): the path down to the
    first list index (``hf.vit.encoder.layer.3``), else its first two modules (``hf.vit.embeddings``).
    """
    parts = name.split(".")
    if parts[0] == "hf" and len(parts) > 2:
        path = parts[1:-1]
        digits = [i for i, p in enumerate(path) if p.isdigit()]
        return ".".join(["hf", *(path[:digits[0] + 1] if digits else path[:2])])
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]


def layer_groups(model: nn.Module, spec, x: torch.Tensor) -> list[tuple[str, tuple[str, ...]]]:
    """Parameter groups the target depends on, nearest the output first: [(layer, parameter names)]."""
    lent = {f"inner.{n}": p.detach().requires_grad_(True) for n, p in model.named_parameters()}
    with torch.enable_grad():
        score = functional_call(_Scores(model, spec), lent, (x[:1],))  # (1, K)
    depth = _leaf_depths(score, {id(v): n.removeprefix("inner.") for n, v in lent.items()})
    groups: dict[str, list[str]] = {}
    for name in sorted(depth, key=depth.get):
        groups.setdefault(_group_of(name), []).append(name)
    return sorted(((g, tuple(ns)) for g, ns in groups.items()), key=lambda item: min(depth[n] for n in item[1]))


class _Scores(nn.Module):
    """A model seen as the scores its attributions explain (logits, capsule lengths, latent means)."""

    def __init__(self, model: nn.Module, spec):
        super().__init__()
        self.inner, self.spec = model, spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return score_fn(self.inner, self.spec)(x)


def _leaf_depths(output: torch.Tensor, names: dict[int, str]) -> dict[str, int]:
    """Longest-path distance from the output to every parameter it depends on, by name.

    The longest path, not the shortest: a residual stream gives early parameters (positional
    embeddings) a short path to the output, but they still sit below every block.
    """
    children = {}
    stack = [output.grad_fn]
    while stack:  # collect the reachable graph
        node = stack.pop()
        if node is None or id(node) in children:
            continue
        children[id(node)] = (node, [fn for fn, _ in node.next_functions if fn is not None])
        stack.extend(children[id(node)][1])
    indegree = {k: 0 for k in children}
    for _, kids in children.values():
        for kid in kids:
            indegree[id(kid)] += 1
    dist, ready = {id(output.grad_fn): 0}, [output.grad_fn]
    while ready:  # Kahn's topological order; dist = longest distance so far
        node = ready.pop()
        for kid in children[id(node)][1]:
            dist[id(kid)] = max(dist.get(id(kid), 0), dist[id(node)] + 1)
            indegree[id(kid)] -= 1
            if indegree[id(kid)] == 0:
                ready.append(kid)
    depth = {}
    for key, (node, _) in children.items():
        var = getattr(node, "variable", None)
        if var is not None and id(var) in names:
            depth[names[id(var)]] = dist[key]
    return depth


def reinitialise(model: nn.Module, names: tuple[str, ...], seed: int) -> None:
    """Re-initialise the named parameters in place: reset_parameters where a module has it, else
    a normal draw with the tensor's own standard deviation (0.02 for constant tensors)."""
    params = dict(model.named_parameters())
    owners = {n.rpartition(".")[0] for n in names}
    done: set[str] = set()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for owner in sorted(owners):
            module = model.get_submodule(owner)
            own = {f"{owner}.{k}" if owner else k for k, _ in module.named_parameters(recurse=False)}
            if hasattr(module, "reset_parameters") and own <= set(names):
                module.reset_parameters()
                done |= own
        for n in names:
            if n not in done:
                p = params[n]
                std = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.02
                p.copy_(torch.randn(p.shape) * std)
