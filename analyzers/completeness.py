"""The completeness check: does an attribution add up to F(x) - F(baseline), and what to do when it does not.

Integrated Gradients and its kin promise sum(attributions) = F(x) - F(baseline) (completeness,
Sundararajan et al. 2017); the relative error of that sum is flagged above 5 %.
"""

from __future__ import annotations

import torch

from .attribution_params import GradientShapParams

FLAG_THRESHOLD = 0.05  # relative completeness error above which a result is flagged

MIN_GAP = 1e-4  # floor of |F(x) - F(baseline)| in the relative error


def completeness(f_x: torch.Tensor, f_baseline: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative completeness error |delta| / |F(x) - F(baseline)| and the flag rel_error > 5%, each (B,).

    The denominator is floored at MIN_GAP so a baseline that scores like the input does not
    divide by ~0. NaN deltas (methods without a completeness axiom) give NaN and no flag.
    """
    gap = (f_x - f_baseline).abs().clamp(min=MIN_GAP)
    rel = delta.abs() / gap
    return rel, torch.nan_to_num(rel, nan=0.0) > FLAG_THRESHOLD


def convergence_delta(attr: torch.Tensor, f_x: torch.Tensor, f_baseline: torch.Tensor) -> torch.Tensor:
    """captum's convergence delta, sum(attributions) - (F(x) - F(baseline)), per example (B,).

    Computed here from the same F values the result reports, in float64, rather than by
    captum's own extra forward passes.
    """
    total = attr.flatten(1).double().sum(1)
    return total - (f_x.double() - f_baseline.double())


def trapezoid_scale(n: int) -> float:
    """The factor n / (n - 1) that turns captum's riemann_trapezoid weights into the trapezoid rule.

    captum 0.9 samples alphas = linspace(0, 1, n) (spacing 1 / (n - 1)) but weighs them with
    1 / n (ends halved): the weights sum to (n - 1) / n, so even a linear model's IG comes out
    (n - 1) / n too small.
    """
    return n / (n - 1)


def advice(rel: float, params) -> str:
    """What to change for a completeness error the method could not check itself: no step count is promised."""
    head = f"Completeness error {rel:.1%} > {FLAG_THRESHOLD:.0%}"
    if isinstance(params, GradientShapParams):
        return f"{head}: GradientSHAP is complete only on average over its samples; more n_samples narrows the gap"
    if getattr(params, "method", "gausslegendre") != "gausslegendre":
        return f"{head}: try method=gausslegendre, or more n_steps, and check the readout again"
    return f"{head}: try more n_steps or another baseline, and check the readout again"
