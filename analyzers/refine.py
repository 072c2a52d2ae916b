"""Progressive attributions: a coarse result at once, refined until its convergence check passes.

Integrated Gradients is refined by path points, on a quadrature rule whose points nest where it can:

- ``trapezoid``: n = 2, 3, 5, 9, 17, ... points (intervals doubling); every earlier point is reused,
  each level costs only its new (odd) points. Equals captum's ``riemann_trapezoid`` with n_steps=n
  (with the n / (n - 1) correction of :func:`analyzers.completeness.trapezoid_scale`).
- ``midpoint``: n = s, 3s, 9s, ... (tripling: the old midpoints are midpoints of the new thirds); equals
  captum's ``riemann_middle``.
- ``gausslegendre``: n = s, 2s, 4s, ...; the nodes do not nest, so every level is a fresh captum run.

It stops as soon as the largest relative completeness error of the batch is at most ``tol`` (5 %, as
:data:`analyzers.completeness.FLAG_THRESHOLD`) or the next level would pass the step cap; each
:class:`Refinement` says how many steps it used and whether the cap stopped it.

SmoothGrad and GradientSHAP are refined by samples (doubling); their readout is the spread across
samples: the standard error of the mean map relative to the map's norm, ``||SE|| / ||mean||``, and they
stop when it is at most ``spread_tol``.

The API is a generator, :func:`refine`: each item is a provisional (then the final) result that a caller
can draw at once. Stop early by leaving the loop (``gen.close()``: the model is left as found) or with
``should_stop``; a runtime guard raising inside the model's forward (``app.runtime.guards.Deadline``)
ends it the same way.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from captum.attr import IntegratedGradients, Saliency
from captum.attr._core.gradient_shap import InputBaselineXGradient

from .attribution import _Computed, _image_result, _no_grad_scores, _seeded
from .attribution_params import IG_CPU_BATCH, GradientShapParams, IGParams, SmoothGradParams
from .baselines import make_baselines
from .completeness import FLAG_THRESHOLD, MIN_GAP, convergence_delta, trapezoid_scale
from .forward import image_batch, resolve_targets, score_fn
from .params import ParamError, Params
from .results import AttributionResult
from .run import analysis, halving_on_oom

RULES = ("trapezoid", "midpoint", "gausslegendre")
CAPTUM_METHOD = {"trapezoid": "riemann_trapezoid", "midpoint": "riemann_middle", "gausslegendre": "gausslegendre"}
DEFAULT_RULE = "midpoint"  # fewest evaluations to pass on the zoo's held-out digits: 0.26x the fixed 64 GL steps,
# trapezoid 0.29x, Gauss-Legendre restarted at each level 0.38x (bench/refine.py, 50 digits x 8 models)
DEFAULT_START = {"trapezoid": 2, "midpoint": 2, "gausslegendre": 2}
DEFAULT_CAP = 257  # path points: 4x today's fixed default of 64 (midpoint 2 -> 162, trapezoid 2 -> 257)
DEFAULT_START_SAMPLES = 4
DEFAULT_MAX_SAMPLES = 256
SPREAD_THRESHOLD = 0.10  # ||standard error of the mean map|| / ||mean map|| at which sampling stops
REFINABLE = ("integrated_gradients", "smoothgrad", "gradient_shap")


@dataclass(frozen=True)
class Refinement:
    """One stage of a progressive attribution: the result so far and how it was reached.

    ``steps`` are path points (IG) or samples (SmoothGrad, GradientSHAP); ``evaluations`` the gradient
    evaluations (forward + backward at one point of one example) spent so far, every level included;
    ``error`` the readout (``readout``: "completeness" = largest relative completeness error of the batch,
    "spread" = largest relative standard error across samples) against ``threshold``. ``final`` marks the
    last item; ``capped`` that it ended above the threshold because the next level would pass the cap.
    ``params`` are the params of the one-shot run that gives ``result`` (n_steps and method, or the samples).
    """

    result: AttributionResult
    method: str
    rule: str
    steps: int
    cap: int
    evaluations: int
    error: float
    readout: str
    threshold: float
    final: bool
    capped: bool
    seconds: float
    params: Params
    level: int

    @property
    def passed(self) -> bool:
        return bool(self.error <= self.threshold)

    def status(self) -> str:
        """The stage in words, e.g. 'provisional: 9 path points, completeness error 7.3 % (> 5 %)'."""
        unit = "path points" if self.method == "integrated_gradients" else "samples"
        what = "completeness error" if self.readout == "completeness" else "spread across samples"
        err = "n/a" if not math.isfinite(self.error) else f"{self.error:.1%}"
        cmp = "≤" if self.passed else ">"
        state = ("final" if self.passed else f"stopped at the cap of {self.cap} {unit}") if self.final else "provisional"
        return f"{state}: {self.steps} {unit} ({self.rule}), {what} {err} ({cmp} {self.threshold:.0%})"


def schedule(rule: str, start: int, cap: int) -> list[int]:
    """The step counts of the levels, up to ``cap``: nested for trapezoid (2^k m + 1) and midpoint (3^k s)."""
    if rule not in RULES:
        raise ParamError(f"unknown refinement rule {rule!r}; choose from {', '.join(RULES)}")
    if rule == "trapezoid":
        start = max(2, start)
        out, m = [], start - 1
        while m + 1 <= cap:
            out.append(m + 1)
            m *= 2
    else:
        out, n = [], max(1 if rule == "midpoint" else 2, start)
        while n <= cap:
            out.append(n)
            n *= 3 if rule == "midpoint" else 2
    if not out:
        raise ParamError(f"the step cap {cap} is below the first level ({start}); raise it")
    return out


def _alphas(rule: str, n: int) -> list[float]:
    if rule == "trapezoid":
        return [k / (n - 1) for k in range(n)]
    return [(k + 0.5) / n for k in range(n)]


def _new_points(rule: str, n: int, previous: int) -> list[float]:
    """The path points of level ``n`` not already evaluated at level ``previous`` (all of them for the first)."""
    if not previous:
        return _alphas(rule, n)
    if rule == "trapezoid":  # intervals doubled: the odd multiples of 1 / (n - 1) are new
        return [k / (n - 1) for k in range(1, n, 2)]
    return [(k + 0.5) / n for k in range(n) if k % 3 != 1]  # midpoint: k = 3j + 1 are the old (j + 0.5) / p


# --------------------------------------------------------------------------- the path integral, any tensor shape


def path_integral(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, b: torch.Tensor, t: torch.Tensor,
                  *, rule: str = DEFAULT_RULE, start: int | None = None, cap: int = DEFAULT_CAP,
                  tol: float = FLAG_THRESHOLD, batch: int = IG_CPU_BATCH, f_x: torch.Tensor | None = None,
                  f_b: torch.Tensor | None = None, groups: int = 1,
                  should_stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
    """IG of ``f``'s column ``t`` from ``b`` to ``x`` (both (N, ...), any shape), refined level by level.

    Yields dicts ``attr`` (N, ...), ``steps``, ``points`` (path points evaluated so far, per example),
    ``rel`` (G,) relative completeness errors, ``f_x``/``f_b`` (G,), ``final``, ``capped``. With
    ``groups`` > 1 the N rows are ``groups`` consecutive blocks (baseline draws) averaged into G = N /
    groups examples before the completeness check, as :func:`analyzers.integrated_gradients` does.
    Uses captum's ``IntegratedGradients`` on the new points of each level only (weights 1), and
    combines the sums by the rule.
    """
    levels = schedule(rule, DEFAULT_START.get(rule, 2) if start is None else start, cap)
    ig = IntegratedGradients(f)
    if f_x is None:
        f_x = _no_grad_scores(f, x, t, batch)
    if f_b is None:
        f_b = _no_grad_scores(f, b, t, batch)
    fx, fb = (v.double().view(groups, -1).mean(0) for v in (f_x, f_b))
    per_pass = max(1, batch // len(x))  # path points per pass (each holds every example)

    def grad_sum(alphas: list[float], weights: list[float]) -> torch.Tensor:
        def run(ibs: int) -> torch.Tensor:
            per = max(1, ibs // len(x))
            total = torch.zeros_like(x)
            for i in range(0, len(alphas), per):
                a, w = alphas[i:i + per], weights[i:i + per]
                total += ig._attribute((x,), (b,), target=t, n_steps=len(a), step_sizes_and_alphas=(w, a))[0]
            return total
        return halving_on_oom(run, per_pass * len(x))

    sums = {"ends": torch.zeros_like(x), "inner": torch.zeros_like(x)}
    previous, points = 0, 0
    for level, n in enumerate(levels):
        if rule == "gausslegendre":
            from captum.attr._utils.approximation_methods import approximation_parameters
            sizes, alphas = (g(n) for g in approximation_parameters("gausslegendre"))
            attr, points = grad_sum(list(alphas), list(sizes)), points + n
        else:
            new = _new_points(rule, n, previous)
            if rule == "trapezoid" and not previous:
                sums["ends"] += grad_sum([0.0, 1.0], [1.0, 1.0])
                new = new[1:-1]
            if new:
                sums["inner"] += grad_sum(new, [1.0] * len(new))
            points += len(new) + (2 if rule == "trapezoid" and not previous else 0)
            if rule == "trapezoid":
                attr = (sums["inner"] + 0.5 * sums["ends"]) / (n - 1)
            else:
                attr = sums["inner"] / n
        previous = n
        mean = attr.view(groups, -1, *x.shape[1:]).mean(0)
        rel = (convergence_delta(mean, fx, fb).abs() / (fx - fb).abs().clamp(min=MIN_GAP)).cpu()
        passed = bool((rel <= tol).all())
        last = level == len(levels) - 1
        stop = passed or last or should_stop()
        yield {"attr": mean, "steps": n, "points": points, "rel": rel, "f_x": fx, "f_b": fb, "final": stop,
               "capped": last and not passed}
        if stop:
            return


# --------------------------------------------------------------------------- zoo image models


def refine(model, spec, inputs, method: str = "integrated_gradients", params: Params | None = None, *,
           rule: str = DEFAULT_RULE, start: int | None = None, cap: int | None = None, tol: float = FLAG_THRESHOLD,
           spread_tol: float = SPREAD_THRESHOLD, should_stop: Callable[[], bool] = lambda: False,
           baseline_tensor: torch.Tensor | None = None) -> Iterator[Refinement]:
    """Yield provisional attributions of ``method`` on image ``inputs``, each sharper than the last; the last
    item has ``final=True``.

    IG: ``params`` as :class:`IGParams` (its ``n_steps`` and ``method`` are replaced by the refinement's
    levels and ``rule``; ``cap`` defaults to :data:`DEFAULT_CAP`). SmoothGrad / GradientSHAP: samples
    double from :data:`DEFAULT_START_SAMPLES` up to ``cap`` (default :data:`DEFAULT_MAX_SAMPLES`).
    The final result equals the one-shot method with ``Refinement.params`` (IG, SmoothGrad exactly;
    GradientSHAP draws its samples per level, see :func:`_shap_levels`).
    """
    if method not in REFINABLE:
        raise ParamError(f"{method} is not refined progressively; choose from {', '.join(REFINABLE)}")
    if spec.input.modality != "image":
        raise ParamError(f"progressive refinement works on images; {spec.name} takes {spec.input.modality}")
    defaults = {"integrated_gradients": IGParams, "smoothgrad": SmoothGradParams, "gradient_shap": GradientShapParams}
    params = defaults[method]() if params is None else params
    if not isinstance(params, defaults[method]):
        raise ParamError(f"{method} takes {defaults[method].__name__}, not {type(params).__name__}")
    if baseline_tensor is not None and hasattr(params, "baseline"):
        params = params.replace(baseline="custom")
    started = time.perf_counter()
    with analysis(model, spec, method, params) as run:
        x = image_batch(inputs, spec, run.device)
        f = score_fn(model, spec)
        with torch.no_grad():
            scores = f(x)
        t = resolve_targets(scores, spec, params.target)
        if method == "integrated_gradients":
            levels = _ig_levels(f, x, scores, t, params, rule, start, cap or DEFAULT_CAP, tol, baseline_tensor,
                                should_stop)
        elif method == "smoothgrad":
            levels = _smoothgrad_levels(f, x, t, params, start, cap or DEFAULT_MAX_SAMPLES, spread_tol, should_stop)
        else:
            levels = _shap_levels(f, x, t, params, start, cap or DEFAULT_MAX_SAMPLES, spread_tol, should_stop,
                                  baseline_tensor)
        top = (schedule(rule, DEFAULT_START.get(rule, 2) if start is None else start, cap or DEFAULT_CAP)[-1]
               if method == "integrated_gradients" else _sample_levels(start, cap or DEFAULT_MAX_SAMPLES)[-1])
        for level, (out, one_shot, steps, evals, error, final, capped) in enumerate(levels):
            run.params = one_shot
            result = _image_result(run, spec, x, scores, t, out, one_shot)
            if final and method == "integrated_gradients" and "routing" in spec.capabilities:
                from .routing import with_routing_switches  # MoE: count (and name) top-k switches on the path
                custom = baseline_tensor is not None and hasattr(one_shot, "baseline")
                result = with_routing_switches(model, spec, result, one_shot.replace(baseline="custom") if custom
                                               else one_shot)
            yield Refinement(result, method, rule if method == "integrated_gradients" else "samples", steps, top, evals,
                             error, "completeness" if method == "integrated_gradients" else "spread",
                             tol if method == "integrated_gradients" else spread_tol, final, capped,
                             time.perf_counter() - started, one_shot, level)


def refine_to_end(*args: Any, **kwargs: Any) -> Refinement:
    """The last item of :func:`refine` (the final or stopped result)."""
    last = None
    for last in refine(*args, **kwargs):
        pass
    return last


def _ig_levels(f, x, scores, t, p: IGParams, rule, start, cap, tol, custom, should_stop):
    base = make_baselines(x, p.baseline, draws=p.baseline_draws, sigma=p.blur_sigma, seed=p.seed, custom=custom)
    k, B = base.shape[:2]  # (k, B, ...)
    xs, bs, ts = x.repeat(k, *[1] * (x.dim() - 1)), base.flatten(0, 1), t.repeat(k)
    batch = p.internal_batch_size or IG_CPU_BATCH
    fx = scores.gather(1, t[:, None])[:, 0].repeat(k)
    for lv in path_integral(f, xs, bs, ts, rule=rule, start=start, cap=cap, tol=tol, batch=batch, f_x=fx,
                            groups=k, should_stop=should_stop):
        one_shot = p.replace(n_steps=lv["steps"], method=CAPTUM_METHOD[rule])
        out = _Computed(lv["attr"], base.mean(0), f_baseline=lv["f_b"].to(x.dtype), complete=True)
        yield out, one_shot, lv["steps"], lv["points"] * k * B, float(lv["rel"].max()), lv["final"], lv["capped"]


def _sample_levels(start: int | None, cap: int) -> list[int]:
    out, n = [], max(1, start or DEFAULT_START_SAMPLES)
    while n <= cap:
        out.append(n)
        n *= 2
    if not out:
        raise ParamError(f"the sample cap {cap} is below the first level; raise it")
    return out


def spread(total: torch.Tensor, total_sq: torch.Tensor, n: int) -> torch.Tensor:
    """||standard error of the mean map|| / ||mean map|| per example (B,), from sums over n samples (B, ...)."""
    mean = total.double() / n
    var = (total_sq.double() / n - mean ** 2).clamp(min=0) * (n / max(1, n - 1))
    se = (var / n).sqrt()
    return se.flatten(1).norm(dim=1) / mean.flatten(1).norm(dim=1).clamp(min=1e-12)


def _smoothgrad_levels(f, x, t, p: SmoothGradParams, start, cap, tol, should_stop):
    """SmoothGrad's noisy copies in the order captum's NoiseTunnel draws them for one example (seeded), so n
    samples refined level by level equal ``smoothgrad`` with ``nt_samples=n``."""
    use_ig = p.base == "integrated_gradients"
    base = IntegratedGradients(f) if use_ig else Saliency(f)
    gens = [torch.Generator(device="cpu").manual_seed(p.seed) for _ in range(len(x))]
    per_eval = p.n_steps if use_ig else 1
    s1 = torch.zeros_like(x, dtype=torch.float64)
    s2, q1, q2 = torch.zeros_like(s1), torch.zeros_like(s1), torch.zeros_like(s1)
    done, levels = 0, _sample_levels(start, cap)
    for n in levels:
        for i in range(len(x)):
            m = n - done
            noise = torch.normal(0.0, float(p.stdevs), (m, *x.shape[1:]), generator=gens[i]).to(x.device)
            noisy = (x[i:i + 1] + noise).requires_grad_()
            if use_ig:
                a = base.attribute(noisy, baselines=0.0, target=t[i:i + 1].repeat(m), n_steps=p.n_steps,
                                   internal_batch_size=p.internal_batch_size or IG_CPU_BATCH)
            else:
                a = base.attribute(noisy, target=t[i:i + 1].repeat(m))
            a = a.detach().double()
            s1[i] += a.sum(0)
            s2[i] += (a ** 2).sum(0)
            q = a ** 2 if p.nt_type != "smoothgrad" else a  # what is averaged (vargrad: about the mean)
            q1[i] += q.sum(0)
            q2[i] += (q ** 2).sum(0)
        done = n
        mean = s1 / n
        attr = {"smoothgrad": mean, "smoothgrad_sq": s2 / n, "vargrad": s2 / n - mean ** 2}[p.nt_type]
        err = spread(q1, q2, n)
        passed = bool((err <= tol).all())
        last = n == levels[-1]
        final = passed or last or should_stop()
        one_shot = p.replace(nt_samples=n)
        out = _Computed(attr.to(x.dtype), torch.zeros_like(x) if use_ig else None)
        yield out, one_shot, n, n * per_eval * len(x), float(err.max()), final, last and not passed
        if final:
            return


def _shap_levels(f, x, t, p: GradientShapParams, start, cap, tol, should_stop, custom):
    """GradientSHAP by samples: each level draws its new samples with captum (baselines from the distribution,
    Gaussian noise on the input, a place on each path), seeded by ``seed`` and the level, so a refined
    result is reproducible; captum draws all n at once in another order, so it equals ``gradient_shap``
    in distribution, not sample for sample."""
    ibxg = InputBaselineXGradient(f)
    dists = [make_baselines(x[i:i + 1], p.baseline, draws=p.baseline_draws, sigma=p.blur_sigma, seed=p.seed,
                            custom=None if custom is None else custom.expand_as(x)[i:i + 1])[:, 0]
             for i in range(len(x))]
    fb = torch.stack([_no_grad_scores(f, d, t[i].repeat(len(d)), 256).mean() for i, d in enumerate(dists)])
    s1 = torch.zeros_like(x, dtype=torch.float64)
    s2 = torch.zeros_like(s1)
    dsum = torch.zeros(len(x), dtype=torch.float64)
    done, levels = 0, _sample_levels(start, cap)
    for level, n in enumerate(levels):
        m = n - done
        for i in range(len(x)):
            with _seeded(p.seed + 7919 * level, x.device), torch.no_grad():
                picks = np.random.choice(len(dists[i]), m).tolist()
                noisy = x[i:i + 1] + torch.randn((m, *x.shape[1:]), device=x.device) * p.stdevs
                a, d = ibxg.attribute(noisy, baselines=dists[i][picks], target=int(t[i]),
                                      return_convergence_delta=True)
            a = a.detach().double()
            s1[i] += a.sum(0)
            s2[i] += (a ** 2).sum(0)
            dsum[i] += d.double().sum().cpu()
        done = n
        err = spread(s1, s2, n)
        passed = bool((err <= tol).all())
        last = n == levels[-1]
        final = passed or last or should_stop()
        out = _Computed((s1 / n).to(x.dtype), torch.stack([d.mean(0) for d in dists]), (dsum / n).to(x.dtype), fb)
        yield out, p.replace(n_samples=n), n, n * len(x), float(err.max()), final, last and not passed
        if final:
            return


def with_note(step: Refinement, note: str) -> Refinement:
    """``step`` with ``note`` (why it stopped early) in the advice of its examples above the threshold."""
    r = step.result
    advice = tuple(f"{note} {a}".strip() if flag or step.error > step.threshold else a
                   for a, flag in zip(r.advice, r.flagged))
    return dataclasses.replace(step, result=dataclasses.replace(r, advice=advice), final=True)
