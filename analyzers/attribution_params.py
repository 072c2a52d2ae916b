"""The attribution methods' parameters: frozen dataclasses with bounds, the papers, and the CPU batch defaults.

Apart from the methods themselves (:mod:`analyzers.attribution`) so that what an analysis costs and
what a link may hold can be read without the computation.
"""

from __future__ import annotations

from dataclasses import dataclass

from .batching import AUTO
from .params import IG_METHODS, Params, baseline_param, param, target_param

IG_PAPER = "Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks, https://arxiv.org/abs/1703.01365"

SALIENCY_PAPER = "Simonyan, Vedaldi & Zisserman 2014, Deep Inside Convolutional Networks, https://arxiv.org/abs/1312.6034"

IXG_PAPER = "Shrikumar et al. 2016, Not Just a Black Box, https://arxiv.org/abs/1605.01713"

SMOOTHGRAD_PAPER = "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise, https://arxiv.org/abs/1706.03825"

SHAP_PAPER = "Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions, https://arxiv.org/abs/1705.07874"

OCCLUSION_PAPER = "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks, https://arxiv.org/abs/1311.2901"

# Automatic internal batches off CUDA: within 1-6 % of the fastest size for vit-dot and capsnet on 2 CPU
# cores, where 8 was 1.2-2x slower and, for capsnet, 512 and more 1.3x slower (bench/batch.py).
IG_CPU_BATCH = 128  # interpolated inputs per pass

OCCLUSION_CPU_BATCH = 32  # occluded copies per pass

GRADIENT_SHAP_CPU_BATCH = IG_CPU_BATCH  # GradientSHAP's noisy points per pass (a gradient each, like IG's)

# MiniLM's path points cost far more memory: 128 per pass peaked 117 MB higher than 64 for 7 % less time.
TEXT_IG_CPU_BATCH = 64


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
    internal_batch_size: int = param(AUTO, min=0, max=1024, help="Interpolated inputs per forward pass; 0: as many "
                                     "as fit in the memory budget and the GPU's free memory (on the CPU up to "
                                     f"{IG_CPU_BATCH}, for text {TEXT_IG_CPU_BATCH})")
    target: int = target_param()
    seed: int = _seed_param()

    def cost_factors(self) -> dict[str, int]:
        """n_steps path points, for each of ``baseline_draws`` uniform-noise baselines."""
        return {"n_steps": self.n_steps, **({"baseline_draws": self.baseline_draws} if self.baseline == "uniform" else {})}


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
    internal_batch_size: int = param(AUTO, min=0, max=1024, help="Interpolated inputs per forward pass of the IG "
                                     f"base; 0: as many as fit in the memory budget and the GPU's free memory "
                                     f"(up to {IG_CPU_BATCH} on the CPU)")
    target: int = target_param()
    seed: int = _seed_param()

    def cost_factors(self) -> dict[str, int]:
        """nt_samples noisy copies, each through n_steps path points when Integrated Gradients is the base."""
        return {**({"n_steps": self.n_steps} if self.base == "integrated_gradients" else {}), "nt_samples": self.nt_samples}


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

    def cost_factors(self) -> dict[str, int]:
        """n_samples random points on the input-baseline paths."""
        return {"n_samples": self.n_samples}


@dataclass(frozen=True)
class OcclusionParams(Params):
    """Occlusion: the change of the target when a square window is replaced by the baseline."""

    window: int = param(4, min=1, max=28, help="Side of the square occluding window in pixels")
    stride: int = param(2, min=1, max=28, help="Step of the window in pixels")
    baseline: str = baseline_param()
    blur_sigma: float = _blur_param()
    perturbations_per_eval: int = param(AUTO, min=0, max=1024, help="Occluded copies per forward pass; 0: as many "
                                        f"as fit in the memory budget and the GPU's free memory (up to "
                                        f"{OCCLUSION_CPU_BATCH} on the CPU)")
    target: int = target_param()
    seed: int = _seed_param()
