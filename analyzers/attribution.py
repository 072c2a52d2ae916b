"""Attributions: Integrated Gradients with an honest completeness check, and the methods it is compared with.

Every method wraps captum and has one call shape, ``fn(model, spec, inputs, params,
*, baseline_tensor=None) -> AttributionResult``; :func:`attribute` dispatches by name
through :data:`ATTRIBUTION_METHODS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import torch

from .params import IG_METHODS, ParamError, Params, baseline_param, param, target_param
from .results import AttributionResult
from .spec import Inputs, MethodSpec

IG_PAPER = "Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks, https://arxiv.org/abs/1703.01365"
SALIENCY_PAPER = "Simonyan, Vedaldi & Zisserman 2014, Deep Inside Convolutional Networks, https://arxiv.org/abs/1312.6034"
IXG_PAPER = "Shrikumar et al. 2016, Not Just a Black Box, https://arxiv.org/abs/1605.01713"
SMOOTHGRAD_PAPER = "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise, https://arxiv.org/abs/1706.03825"
SHAP_PAPER = "Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions, https://arxiv.org/abs/1705.07874"
OCCLUSION_PAPER = "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks, https://arxiv.org/abs/1311.2901"

FLAG_THRESHOLD = 0.05  # relative completeness error above which a result is flagged
MAX_EVALUATIONS = 1 << 17  # hard cap on n_steps x examples x baseline draws per call


def _seed_param():
    return param(0, min=0, max=2**31 - 1, help="Random seed for noise and random baselines")


def _blur_param():
    return param(4.0, min=0.5, max=14.0, help="Standard deviation in pixels of the Gaussian blur baseline")


@dataclass(frozen=True)
class IGParams(Params):
    """Integrated Gradients: path integral of gradients from a baseline to the input."""

    n_steps: int = param(64, min=2, max=1024, help="Number of steps of the path integral")
    method: str = param("gausslegendre", choices=IG_METHODS, help="Quadrature rule for the path integral")
    baseline: str = baseline_param()
    baseline_draws: int = param(8, min=1, max=64, help="Number of uniform-noise baselines averaged over")
    blur_sigma: float = _blur_param()
    internal_batch_size: int = param(64, min=1, max=1024, help="Interpolated inputs per forward pass (memory)")
    target: int = target_param()
    seed: int = _seed_param()


@dataclass(frozen=True)
class SaliencyParams(Params):
    """Saliency: the gradient of the target with respect to the input."""

    abs: bool = param(True, help="Take the absolute value of the gradient")
    target: int = target_param()


@dataclass(frozen=True)
class InputXGradientParams(Params):
    """Input x Gradient: the input times the gradient of the target."""

    target: int = target_param()


@dataclass(frozen=True)
class SmoothGradParams(Params):
    """SmoothGrad: attributions averaged over noisy copies of the input (captum NoiseTunnel)."""

    base: str = param("saliency", choices=("saliency", "integrated_gradients"), help="Method averaged over noise")
    nt_type: str = param("smoothgrad", choices=("smoothgrad", "smoothgrad_sq", "vargrad"),
                         help="Mean, mean of squares, or variance of the noisy attributions")
    nt_samples: int = param(16, min=1, max=256, help="Number of noisy copies")
    stdevs: float = param(0.15, min=0.0, max=1.0, help="Standard deviation of the Gaussian noise, in pixel units")
    n_steps: int = param(16, min=2, max=1024, help="Steps of Integrated Gradients when it is the base")
    internal_batch_size: int = param(64, min=1, max=1024, help="Interpolated inputs per forward pass (IG base)")
    target: int = target_param()
    seed: int = _seed_param()


@dataclass(frozen=True)
class GradientShapParams(Params):
    """GradientSHAP: expected gradients over noisy inputs and a distribution of baselines."""

    n_samples: int = param(16, min=1, max=1024, help="Random points on the input-baseline paths")
    stdevs: float = param(0.09, min=0.0, max=1.0, help="Standard deviation of the Gaussian noise on the input")
    baseline: str = baseline_param("uniform")
    baseline_draws: int = param(8, min=1, max=64, help="Size of the baseline distribution for uniform noise")
    blur_sigma: float = _blur_param()
    target: int = target_param()
    seed: int = _seed_param()


@dataclass(frozen=True)
class OcclusionParams(Params):
    """Occlusion: the change of the target when a square window is replaced by the baseline."""

    window: int = param(4, min=1, max=28, help="Side of the square occluding window in pixels")
    stride: int = param(2, min=1, max=28, help="Step of the window in pixels")
    baseline: str = baseline_param()
    blur_sigma: float = _blur_param()
    perturbations_per_eval: int = param(16, min=1, max=1024, help="Occluded copies per forward pass (memory)")
    target: int = target_param()
    seed: int = _seed_param()


def integrated_gradients(model, spec, inputs: Inputs, params: IGParams = IGParams(), *,
                         baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """Integrated Gradients of the model's target, with F(x), F(baseline) and the completeness error.

    Images: target = a class (ViT logit, capsule length) or a latent mean mu_k (VAEs).
    MiniLM: ``inputs`` are (sentence A, sentence B) pairs; LayerIntegratedGradients on the word
    embeddings of A, target = cosine similarity of A's pooled embedding to B's (constant),
    baseline = A with every token but [CLS]/[SEP] replaced by [PAD]; scores summed per token.
    Paper: https://arxiv.org/abs/1703.01365
    """
    raise NotImplementedError


def saliency(model, spec, inputs: Inputs, params: SaliencyParams = SaliencyParams(), *,
             baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """Saliency map: the gradient of the target with respect to the pixels (https://arxiv.org/abs/1312.6034)."""
    raise NotImplementedError


def input_x_gradient(model, spec, inputs: Inputs, params: InputXGradientParams = InputXGradientParams(), *,
                     baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """Input times gradient of the target (https://arxiv.org/abs/1605.01713)."""
    raise NotImplementedError


def smoothgrad(model, spec, inputs: Inputs, params: SmoothGradParams = SmoothGradParams(), *,
               baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """SmoothGrad: Saliency or IG averaged over noisy copies of the input (https://arxiv.org/abs/1706.03825)."""
    raise NotImplementedError


def gradient_shap(model, spec, inputs: Inputs, params: GradientShapParams = GradientShapParams(), *,
                  baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """GradientSHAP: expected gradients from a baseline distribution, with its delta (https://arxiv.org/abs/1705.07874)."""
    raise NotImplementedError


def occlusion(model, spec, inputs: Inputs, params: OcclusionParams = OcclusionParams(), *,
              baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """Occlusion: how much the target drops when a window is covered by the baseline (https://arxiv.org/abs/1311.2901)."""
    raise NotImplementedError


_GRADIENTS = frozenset({"gradients"})

ATTRIBUTION_METHODS: MappingProxyType[str, MethodSpec] = MappingProxyType({
    "integrated_gradients": MethodSpec("integrated_gradients", "Integrated Gradients", integrated_gradients, IGParams,
                                       IG_PAPER, _GRADIENTS, frozenset({"image", "text"})),
    "saliency": MethodSpec("saliency", "Saliency", saliency, SaliencyParams, SALIENCY_PAPER, _GRADIENTS),
    "input_x_gradient": MethodSpec("input_x_gradient", "Input x Gradient", input_x_gradient, InputXGradientParams,
                                   IXG_PAPER, _GRADIENTS),
    "smoothgrad": MethodSpec("smoothgrad", "SmoothGrad", smoothgrad, SmoothGradParams, SMOOTHGRAD_PAPER, _GRADIENTS),
    "gradient_shap": MethodSpec("gradient_shap", "GradientSHAP", gradient_shap, GradientShapParams, SHAP_PAPER,
                                _GRADIENTS),
    "occlusion": MethodSpec("occlusion", "Occlusion", occlusion, OcclusionParams, OCCLUSION_PAPER, frozenset()),
})


def attribute(model, spec, inputs: Inputs, method: str, params: Params | None = None, *,
              baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """Run the attribution method named ``method`` (a key of ATTRIBUTION_METHODS) with its params."""
    entry = ATTRIBUTION_METHODS.get(method)
    if entry is None:
        raise ParamError(f"unknown attribution method {method!r}; choose from {', '.join(ATTRIBUTION_METHODS)}")
    params = entry.params() if params is None else params
    if not isinstance(params, entry.params):
        raise ParamError(f"{method} takes {entry.params.__name__}, not {type(params).__name__}")
    return entry.function(model, spec, inputs, params, baseline_tensor=baseline_tensor)
