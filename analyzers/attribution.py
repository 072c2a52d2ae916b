"""Attributions: Integrated Gradients with an honest completeness check, and the methods it is compared with.

Every method wraps captum and has one call shape, ``fn(model, spec, inputs, params,
*, baseline_tensor=None) -> AttributionResult``; :func:`attribute` dispatches by name
through :data:`ATTRIBUTION_METHODS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients, NoiseTunnel, Occlusion, Saliency
from captum.attr._core.gradient_shap import InputBaselineXGradient

from .baselines import make_baselines
from .batching import AUTO, Batching
from .forward import ScoreFn, image_batch, predictions, resolve_targets, score_fn, score_labels, target_label
from .attribution_params import (
    GRADIENT_SHAP_CPU_BATCH, IG_CPU_BATCH, IG_PAPER, IXG_PAPER, OCCLUSION_CPU_BATCH, OCCLUSION_PAPER, SALIENCY_PAPER,
    SHAP_PAPER, SMOOTHGRAD_PAPER, GradientShapParams, IGParams, InputXGradientParams, OcclusionParams,
    SaliencyParams, SmoothGradParams,
)
from .completeness import FLAG_THRESHOLD, advice, completeness, convergence_delta, trapezoid_scale
from .params import ParamError, Params
from .results import AttributionResult
from .run import analysis, halving_on_oom
from .spec import Inputs, MethodSpec
from .text_attribution import text_integrated_gradients
from .text_classification import classifier_integrated_gradients, is_text_classifier


def integrated_gradients(model, spec, inputs: Inputs, params: IGParams = IGParams(), *,
                         baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """Integrated Gradients of the model's target, with F(x), F(baseline) and the completeness error.

    Images: target = a class (ViT logit, capsule length) or a latent mean mu_k (VAEs); with the
    uniform baseline the attributions are averaged over ``baseline_draws`` noise images.
    MiniLM: ``inputs`` are (sentence A, sentence B) pairs; LayerIntegratedGradients on the word
    embeddings of A, target = cosine similarity of A's pooled embedding to B's (constant),
    baseline = A with every token but [CLS]/[SEP] replaced by [PAD] (the ``baseline`` param does
    not apply); scores are summed over the embedding dimension per token.
    Paper: https://arxiv.org/abs/1703.01365
    """
    if is_text_classifier(spec):
        return classifier_integrated_gradients(model, spec, inputs, params)
    if spec.input.modality == "text":
        return text_integrated_gradients(model, spec, inputs, params)
    result = _attribute_images(model, spec, inputs, params, "integrated_gradients", _ig, baseline_tensor)
    if "routing" in spec.capabilities:  # MoE: count top-k routing switches on the path, name them when flagged
        from .routing import with_routing_switches
        custom = baseline_tensor is not None and hasattr(params, "baseline")
        return with_routing_switches(model, spec, result, params.replace(baseline="custom") if custom else params)
    return result


def saliency(model, spec, inputs: Inputs, params: SaliencyParams = SaliencyParams(), *,
             baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """Saliency map: the gradient of the target with respect to the pixels.

    Paper: https://arxiv.org/abs/1312.6034
    """
    return _attribute_images(model, spec, inputs, params, "saliency", _saliency, baseline_tensor)


def input_x_gradient(model, spec, inputs: Inputs, params: InputXGradientParams = InputXGradientParams(), *,
                     baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """Input times the gradient of the target, pixel by pixel.

    Paper: https://arxiv.org/abs/1605.01713
    """
    return _attribute_images(model, spec, inputs, params, "input_x_gradient", _input_x_gradient, baseline_tensor)


def smoothgrad(model, spec, inputs: Inputs, params: SmoothGradParams = SmoothGradParams(), *,
               baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """SmoothGrad: Saliency or IG averaged over noisy copies of the input.

    Each example gets its own noise from ``seed``, so a batch gives the same maps as one image at a time.
    No completeness check: the noisy copies are not the input (delta and rel_error are NaN).
    Paper: https://arxiv.org/abs/1706.03825
    """
    return _attribute_images(model, spec, inputs, params, "smoothgrad", _smoothgrad, baseline_tensor)


def gradient_shap(model, spec, inputs: Inputs, params: GradientShapParams = GradientShapParams(), *,
                  baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """GradientSHAP: expected gradients over a distribution of baselines, with its convergence delta.

    Completeness holds only in expectation: ``delta`` is the mean of captum's per-sample deltas
    and a flag asks for more ``n_samples``. Paper: https://arxiv.org/abs/1705.07874
    """
    return _attribute_images(model, spec, inputs, params, "gradient_shap", _gradient_shap, baseline_tensor)


def occlusion(model, spec, inputs: Inputs, params: OcclusionParams = OcclusionParams(), *,
              baseline_tensor: torch.Tensor | None = None) -> AttributionResult:
    """Occlusion: how much the target drops when a window is covered by the baseline.

    With the uniform baseline, the map is averaged over 4 noise images.

    Paper: https://arxiv.org/abs/1311.2901
    """
    return _attribute_images(model, spec, inputs, params, "occlusion", _occlusion, baseline_tensor)


# ---------------------------------------------------------------------------------------------
# Images: one frame for every method; each method only computes attributions (and a delta).

@dataclass
class _Computed:
    """What a method computed: attributions, the baseline used, and its completeness terms."""

    attributions: torch.Tensor  # (B, C, H, W)
    baselines: torch.Tensor | None = None  # (B, 1, 28, 28), mean over draws
    delta: torch.Tensor | None = None  # (B,), when the method measures its own (GradientSHAP)
    f_baseline: torch.Tensor | None = None  # (B,)
    complete: bool = False  # True: delta = sum(attributions) - (F(x) - f_baseline), from the frame's F(x)
    advice: tuple[str, ...] | None = None  # per example, checked by the method itself (IG: steps tried)


Compute = Callable[[ScoreFn, torch.Tensor, torch.Tensor, Any, "torch.Tensor | None", Batching], _Computed]


def _attribute_images(model, spec, inputs, params, name: str, compute: Compute,
                      baseline_tensor: torch.Tensor | None, targets: torch.Tensor | None = None) -> AttributionResult:
    if spec.input.modality != "image":
        raise ParamError(f"{name} works on images; for {spec.name} use integrated_gradients")
    if baseline_tensor is not None and hasattr(params, "baseline"):
        params = params.replace(baseline="custom")
    with analysis(model, spec, name, params) as run:
        x = image_batch(inputs, spec, run.device)  # (B, 1, 28, 28)
        f = score_fn(model, spec)
        with torch.no_grad():
            scores = f(x)  # (B, K)
        t = resolve_targets(scores, spec, params.target) if targets is None else targets.to(run.device)
        out = compute(f, x, t, params, baseline_tensor, Batching(run.device, (spec.name, tuple(x.shape[1:]))))
        return _image_result(run, spec, x, scores, t, out, params)


def _image_result(run, spec, x, scores, t, out: _Computed, params) -> AttributionResult:
    B = x.shape[0]
    fx = scores.gather(1, t[:, None])[:, 0].double()
    nan = torch.full((B,), float("nan"), dtype=torch.float64)
    fb = out.f_baseline.double().cpu() if out.f_baseline is not None else nan
    if out.complete:
        delta = convergence_delta(out.attributions, fx, out.f_baseline).cpu()
    else:
        delta = out.delta.double().cpu() if out.delta is not None else nan
    rel, flagged = completeness(fx.cpu(), fb, delta)
    advised = out.advice or tuple(advice(r, params) if f else "" for r, f in zip(rel.tolist(), flagged.tolist()))
    base = out.baselines if out.baselines is not None else torch.full_like(x, float("nan"))
    return AttributionResult(
        info=run.info(), attributions=_np(out.attributions, np.float32), inputs=_np(x, np.float32),
        baselines=_np(base, np.float32), targets=_np(t, np.int64), predictions=_np(predictions(scores, spec), np.int64),
        scores=_np(scores, np.float32), f_x=_np(fx, np.float64), f_baseline=fb.numpy(), delta=delta.numpy(),
        rel_error=rel.numpy(), flagged=flagged.numpy(), advice=advised,
        labels=score_labels(spec, scores.shape[1]), target_label=target_label(spec),
    )


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype, copy=False)


STEPS_TRIED = 512  # path points per example an IG may spend finding a step count that passes (or 4x its own)


def _checked_advice(f: ScoreFn, x, t, p: IGParams, custom, batching: Batching, out: _Computed) -> tuple[str, ...]:
    """For each example whose completeness error is above the threshold, the smallest doubling of n_steps (up to
    1024) at which it is not, found by running IG there, or what the largest tried still gives.

    Following the advice brings the error under the threshold: it names a value that was checked (a smaller
    n_steps can give a larger error than the one before, as Gauss-Legendre at 2 and 8 steps does).
    """
    fx = _no_grad_scores(f, x, t, len(x))
    rel = completeness(fx.double(), out.f_baseline.double(), convergence_delta(out.attributions, fx, out.f_baseline))[0]
    found = ["" if r <= FLAG_THRESHOLD else None for r in rel.tolist()]
    steps, budget, last = p.n_steps, max(4 * p.n_steps, STEPS_TRIED), rel.tolist()
    while any(a is None for a in found) and steps < 1024 and budget >= min(1024, 2 * steps):
        steps = min(1024, 2 * steps)
        budget -= steps
        todo = [i for i, a in enumerate(found) if a is None]
        tried = _ig_core(f, x[todo], t[todo], p.replace(n_steps=steps), custom, batching)
        fx_todo = fx[todo]
        r = completeness(fx_todo.double(), tried.f_baseline.double(),
                         convergence_delta(tried.attributions, fx_todo, tried.f_baseline))[0].tolist()
        for i, ri in zip(todo, r):
            last[i] = ri
            if ri <= FLAG_THRESHOLD:
                found[i] = (f"Completeness error {rel[i]:.1%} > {FLAG_THRESHOLD:.0%}: raise n_steps to {steps} "
                             f"(checked: {ri:.1%} there)")
    other = " or method=gausslegendre" if p.method != "gausslegendre" else ""
    return tuple(a if a is not None else (
        f"Completeness error {rel[i]:.1%} > {FLAG_THRESHOLD:.0%}, still {last[i]:.1%} at n_steps={steps}: try another "
        f"baseline{other}" if steps > p.n_steps else
        f"Completeness error {rel[i]:.1%} > {FLAG_THRESHOLD:.0%} at the maximum n_steps: try another baseline{other}")
        for i, a in enumerate(found))


def _no_grad_scores(f: ScoreFn, x: torch.Tensor, t: torch.Tensor, batch: int) -> torch.Tensor:
    """F(x)[target] (N,) computed under no_grad in chunks of ``batch``."""
    with torch.no_grad():
        return torch.cat([f(x[i:i + batch]).gather(1, t[i:i + batch, None])[:, 0] for i in range(0, len(x), batch)])


def _ig_batch(ig: IntegratedGradients, x, b, t, requested: int, items: int, batching: Batching) -> int:
    """IG's internal batch: as asked, or from the memory one path point of x costs (x, b, t: one example)."""
    def probe(n: int):
        return ig.attribute(x, b, target=t, n_steps=n, method="gausslegendre", internal_batch_size=n)
    return batching.size(requested, items, probe, kind="integrated_gradients", cpu=IG_CPU_BATCH)


def _ig(f: ScoreFn, x, t, p: IGParams, custom, batching: Batching) -> _Computed:
    out = _ig_core(f, x, t, p, custom, batching)
    return dataclasses.replace(out, advice=_checked_advice(f, x, t, p, custom, batching, out))


def _ig_core(f: ScoreFn, x, t, p: IGParams, custom, batching: Batching) -> _Computed:
    """Integrated Gradients averaged over the baseline draws, with F(baseline) for the completeness check."""
    base = make_baselines(x, p.baseline, draws=p.baseline_draws, sigma=p.blur_sigma, seed=p.seed, custom=custom)
    k, B = base.shape[:2]  # (k, B, 1, 28, 28)
    xs, bs, ts = x.repeat(k, *[1] * (x.dim() - 1)), base.flatten(0, 1), t.repeat(k)
    ig = IntegratedGradients(f)
    batch = _ig_batch(ig, xs[:1], bs[:1], ts[:1], p.internal_batch_size, p.n_steps * len(xs), batching)

    def run(ibs: int) -> torch.Tensor:
        return torch.cat([ig.attribute(xs[i:i + ibs], bs[i:i + ibs], target=ts[i:i + ibs], n_steps=p.n_steps,
                                       method=p.method, internal_batch_size=ibs) for i in range(0, len(xs), ibs)])

    attr = halving_on_oom(run, batch)
    if p.method == "riemann_trapezoid":
        attr = attr * trapezoid_scale(p.n_steps)
    attr = attr.view(k, B, *x.shape[1:]).mean(0)  # averaged over the baseline draws
    fb = _no_grad_scores(f, bs, ts, batch).view(k, B).mean(0)
    return _Computed(attr, base.mean(0), f_baseline=fb, complete=True)


def _saliency(f: ScoreFn, x, t, p: SaliencyParams, custom, batching) -> _Computed:
    return _Computed(Saliency(f).attribute(x.clone().requires_grad_(), target=t, abs=p.abs))


def _input_x_gradient(f: ScoreFn, x, t, p: InputXGradientParams, custom, batching) -> _Computed:
    return _Computed(InputXGradient(f).attribute(x.clone().requires_grad_(), target=t))


@contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed torch's and numpy's global generators for captum's noise, restoring both afterwards.

    captum draws NoiseTunnel noise from torch and GradientSHAP's path points from numpy.
    """
    devices = [device] if device.type == "cuda" else []
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


def _smoothgrad(f: ScoreFn, x, t, p: SmoothGradParams, custom, batching: Batching) -> _Computed:
    use_ig = p.base == "integrated_gradients"
    base = IntegratedGradients(f) if use_ig else Saliency(f)
    nt = NoiseTunnel(base)
    batch = _ig_batch(base, x[:1], torch.zeros_like(x[:1]), t[:1], p.internal_batch_size, p.nt_samples * p.n_steps,
                      batching) if use_ig else 0

    def run(ibs: int) -> torch.Tensor:
        extra = {"n_steps": p.n_steps, "internal_batch_size": ibs, "baselines": 0.0} if use_ig else {}
        out = []
        for i in range(x.shape[0]):  # one example at a time: its noise depends only on the seed
            with _seeded(p.seed, x.device):
                out.append(nt.attribute(x[i:i + 1], nt_type=p.nt_type, nt_samples=p.nt_samples, stdevs=p.stdevs,
                                        target=t[i:i + 1], nt_samples_batch_size=max(1, min(p.nt_samples, 64)),
                                        **extra))
        return torch.cat(out)

    return _Computed(halving_on_oom(run, batch) if use_ig else run(0), torch.zeros_like(x) if use_ig else None)


def _gradient_shap(f: ScoreFn, x, t, p: GradientShapParams, custom, batching: Batching) -> _Computed:
    attrs, deltas, fbs, bases = [], [], [], []
    for i in range(x.shape[0]):  # one example at a time: its samples depend only on the seed
        dist = make_baselines(x[i:i + 1], p.baseline, draws=p.baseline_draws, sigma=p.blur_sigma, seed=p.seed,
                              custom=None if custom is None else custom.expand_as(x)[i:i + 1])[:, 0]  # (k, 1, 28, 28)
        a, d = _shap_example(f, x[i:i + 1], dist, int(t[i]), p, batching)
        attrs.append(a)
        deltas.append(d.mean().view(1))
        fbs.append(_no_grad_scores(f, dist, t[i].repeat(len(dist)), 256).mean().view(1))
        bases.append(dist.mean(0, keepdim=True))
    return _Computed(torch.cat(attrs), torch.cat(bases), torch.cat(deltas), torch.cat(fbs))


def _shap_example(f: ScoreFn, x, dist, t: int, p: GradientShapParams, batching: Batching):
    """GradientSHAP of one example, its noisy points passed through the model as many at a time as the budget holds."""
    def run(n: int):
        return _shap_samples(f, x, dist, t, p, n)

    def probe(n: int):  # one pass over n points
        return _shap_samples(f, x, dist, t, p.replace(n_samples=n), n)

    return halving_on_oom(run, batching.size(AUTO, p.n_samples, probe, kind="gradient_shap",
                                             cpu=GRADIENT_SHAP_CPU_BATCH))


def _shap_samples(f: ScoreFn, x, dist, t: int, p: GradientShapParams, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """captum's GradientShap on one example x (1, 1, 28, 28), its noisy points taken ``batch`` at a time.

    The random draws are captum's, in captum's order (the baselines from ``dist``, the input's
    Gaussian noise, then each point's place on its path), so any ``batch`` gives the result
    ``GradientShap(f).attribute(x, dist, n_samples, stdevs, target)`` gives in one pass; only
    the memory differs. Returns the attributions (1, 1, 28, 28) and each point's delta (n_samples,).
    """
    n, ibxg = p.n_samples, InputBaselineXGradient(f)
    with _seeded(p.seed, x.device), torch.no_grad():  # gradients are turned on inside captum where needed
        picks = np.random.choice(len(dist), n).tolist()  # as captum's NoiseTunnel draws them
        noisy = NoiseTunnel._add_noise_to_input(x, p.stdevs, n)  # (n, 1, 28, 28)
        total, deltas = torch.zeros_like(x), []
        for s in range(0, n, batch):  # each pass draws its points' places on their paths, in order
            a, d = ibxg.attribute(noisy[s:s + batch], baselines=dist[picks[s:s + batch]], target=t,
                                  return_convergence_delta=True)  # (m, 1, 28, 28), (m,)
            total += a.sum(0, keepdim=True)
            deltas.append(d)
    return total / n, torch.cat(deltas)


def _occlusion(f: ScoreFn, x, t, p: OcclusionParams, custom, batching: Batching) -> _Computed:
    base = make_baselines(x, p.baseline, draws=1 if p.baseline != "uniform" else 4, sigma=p.blur_sigma,
                          seed=p.seed, custom=custom)  # (k, B, 1, 28, 28)
    occ = Occlusion(f)
    w_px, s_px = occlusion_window(p, tuple(x.shape[-2:]))
    window, stride = (x.shape[1], w_px, w_px), (x.shape[1], s_px, s_px)  # every channel of a window at once

    def run(per_eval: int):
        return torch.stack([occ.attribute(x, sliding_window_shapes=window, strides=stride, baselines=b, target=t,
                                          perturbations_per_eval=per_eval) for b in base]).mean(0)

    def probe(n: int):  # one pass over n occluded copies of one example
        with torch.no_grad():
            return f(x[:1].expand(n, *x.shape[1:]))

    side = [(s - w) // st + 1 for s, w, st in zip(x.shape[-2:], window[1:], stride[1:])]
    B = x.shape[0]  # a pass holds per_eval copies of each of the B examples
    per_eval = max(1, batching.size(p.perturbations_per_eval * B, side[0] * side[1] * B, probe, kind="occlusion",
                                    cpu=OCCLUSION_CPU_BATCH * B) // B)
    return _Computed(halving_on_oom(run, per_eval), base.mean(0))


def occlusion_window(p: OcclusionParams, size: tuple[int, int]) -> tuple[int, int]:
    """The window side and stride in pixels: as given on the zoo's 28x28 digits, scaled by side / 28 on other
    sizes (window=4 covers 32 pixels of a 224x224 image), at least 1 and at most the image."""
    if min(size) == 28:
        return p.window, p.stride
    scale = min(size) / 28
    return (max(1, min(min(size), round(p.window * scale))), max(1, min(min(size), round(p.stride * scale))))


# ---------------------------------------------------------------------------------------------
# Text: LayerIntegratedGradients on MiniLM's word embeddings, target = cosine similarity A~B.

_COMPUTE: dict[str, Compute] = {
    "integrated_gradients": _ig, "saliency": _saliency, "input_x_gradient": _input_x_gradient,
    "smoothgrad": _smoothgrad, "gradient_shap": _gradient_shap, "occlusion": _occlusion,
}


def attribute_with_targets(model, spec, inputs: torch.Tensor, method: str, params: Params,
                           targets: torch.Tensor) -> AttributionResult:
    """Image attributions for given per-example targets (B,), e.g. fixed across model variants.

    Integrated Gradients runs without its checked advice here: the callers (the sanity check's
    re-initialised models) read the maps, not what would fix their completeness.
    """
    compute = _ig_core if method == "integrated_gradients" else _COMPUTE[method]
    return _attribute_images(model, spec, inputs, params, method, compute, None, targets)


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
    if not entry.fits(spec):
        raise ParamError(f"{entry.label} does not work on {spec.name} ({spec.input.modality} input)")
    params = entry.params() if params is None else params
    if not isinstance(params, entry.params):
        raise ParamError(f"{method} takes {entry.params.__name__}, not {type(params).__name__}")
    return entry.function(model, spec, inputs, params, baseline_tensor=baseline_tensor)
