"""The Attribution page: which pixels made the model decide, with the completeness check and faithfulness curves.

Link: ``/attribution?model=vit-dot&method=integrated_gradients&sample=17&n_steps=64`` (params
that differ from the defaults; ``check=1`` adds the sanity check), or ``?id=<link id>`` for a
saved analysis.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import streamlit as st

from analyzers import CurveParams, RandomisationParams, field_specs, params_from_mapping
from app.charts.attribution import attribution_chart, cascade_chart, randomisation_chart
from app.charts.base import curves_chart, scores_chart
from app.links.catalogue import attribution_methods, attribution_models, default_params, params_class, target_labels
from app.links.codec import InputRef, Params, Query, QueryReader, param_key, read_params, saved_link
from app.runtime import compute
from app.ui import messages
from app.ui.figures import show_built
from app.ui.pickers import method_label
from app.ui.results import computed
from app.ui.vega import attribution_spec

DEFAULT_MODEL = "vit-dot"
DEFAULT_METHOD = "integrated_gradients"


# --------------------------------------------------------------------------- link


def _checked_target(r: QueryReader, model: str, params: Params) -> Params:
    """Params with a ``target`` beyond the model's outputs reported and reset to 'predicted' (-1)."""
    values = dict(params)
    labels = target_labels(model)
    if "target" not in values or not labels or -1 <= int(values["target"]) < len(labels):
        return params
    r.problems.append(f"target {values['target']} is out of range for {model}: it has {len(labels)} outputs "
                      f"(0 to {len(labels) - 1}); use -1 for the predicted one. Using the predicted one.")
    return tuple((k, "-1" if k == "target" else v) for k, v in params)


@dataclass(frozen=True)
class AttributionView:
    """The Attribution page: one model, one method with its params, one input.

    URL: ``?model=vit-dot&method=integrated_gradients&sample=17&n_steps=64`` (params that
    differ from the defaults), or ``?id=<link id>`` for a saved analysis.
    """

    PAGE: ClassVar[str] = "attribution"

    model: str = DEFAULT_MODEL
    method: str = DEFAULT_METHOD
    params: Params = field(default_factory=lambda: default_params(DEFAULT_METHOD))
    input: InputRef = InputRef()
    check: bool = False  # the model-randomisation sanity check is shown
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[AttributionView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        model = r.choice("model", attribution_models(), DEFAULT_MODEL, "model")
        methods = attribution_methods(model)
        method = r.choice("method", methods, DEFAULT_METHOD if DEFAULT_METHOD in methods else methods[0],
                          f"method for {model}")
        ref = InputRef.read(r, uploads)
        params = _checked_target(r, model, read_params(r, params_class(method)))
        check = r.choice("check", ("0", "1"), "0", "check (the sanity check: 1 shows it)") == "1"
        return cls(model, method, params, ref, check), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        defaults = dict(default_params(self.method))
        changed = {param_key(k): v for k, v in self.params if defaults.get(k) != v}
        return {"model": self.model, "method": self.method, **self.input.to_query(), **changed,
                **({"check": "1"} if self.check else {})}

    def params_object(self) -> Any:
        """The validated params dataclass of this view's method."""
        return params_from_mapping(params_class(self.method), dict(self.params))


# --------------------------------------------------------------------------- results


def _fmt(value: float, digits: int = 6) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}g}"


def prediction(result: Any, i: int = 0) -> None:
    """Prediction (or target) and the model output being explained."""
    pred = int(result.predictions[i])
    target = int(result.targets[i])
    labels = result.labels
    cols = st.columns(3)
    cols[0].metric("Prediction", labels[pred] if 0 <= pred < len(labels) else "n/a")
    cols[1].metric("Explained", labels[target] if 0 <= target < len(labels) else str(target),
                   help=f"Target of the attribution: {result.target_label}")
    cols[2].metric("F(input)", _fmt(float(result.f_x[i])), help=result.target_label)


def completeness(result: Any, i: int = 0) -> None:
    """The completeness readout: Σ attributions vs F(x) − F(baseline), flagged above 5 %."""
    total = float(np.sum(result.attributions[i]))
    gap = float(result.f_x[i] - result.f_baseline[i])
    cols = st.columns(4)
    cols[0].metric("Σ attributions", _fmt(total))
    cols[1].metric("F(x) − F(baseline)", _fmt(gap))
    cols[2].metric("Convergence delta", _fmt(float(result.delta[i]), 3))
    rel = float(result.rel_error[i])
    cols[3].metric("Relative error", "n/a" if not np.isfinite(rel) else f"{rel:.2%}")
    if not np.isfinite(rel):
        st.caption("This method makes no completeness promise, so there is nothing to check.")
    elif bool(result.flagged[i]):
        messages.warning(f"Completeness is off by {rel:.1%} (more than 5%): the attributions do not add up to "
                         f"F(x) − F(baseline). {result.advice[i]}")
    else:
        st.caption(f"Completeness holds within {rel:.2%} (flagged above 5%).")


def attribution_heatmap(result: Any, *, vmax: float | None = None, title: str = "Attribution",
                        key: str = "attribution", i: int = 0) -> None:
    """The signed attribution over the input, with a save menu."""
    pixels = np.asarray(result.inputs[i]).reshape(28, 28)
    attr = np.asarray(result.attributions[i]).reshape(28, 28)
    show_built(result, key, title, lambda: attribution_chart(pixels, attr, vmax, title=title),
               spec=lambda: attribution_spec(pixels, attr, vmax, title=title),
               variant=f"{i}:{vmax}:{title}")


def class_scores(result: Any, i: int = 0, key: str = "scores") -> None:
    """The class scores (or latent means) as bars, the prediction highlighted and the explained class beside it."""
    pred, target = int(result.predictions[i]), int(result.targets[i])
    show_built(result, key, "Class scores", lambda: scores_chart(
        result.labels, result.scores[i], pred if pred >= 0 else None, "score",
        explained=target if 0 <= target < len(result.labels) else None), variant=str(i), slot="class-scores")


def curves(result: Any, i: int = 0, key: str = "curves") -> None:
    """Deletion and insertion curves with their areas, against random orderings."""
    left, right = st.columns(2)
    with left:
        show_built(result, f"{key}-deletion", "Deletion curve", lambda: curves_chart(
            result.fractions, {"deletion": result.deletion[i], "random deletion": result.random_deletion[i]},
            title=f"Deletion (AUC {result.deletion_auc[i]:.3f}, lower is better)"), variant=str(i))
    with right:
        show_built(result, f"{key}-insertion", "Insertion curve", lambda: curves_chart(
            result.fractions, {"insertion": result.insertion[i], "random insertion": result.random_insertion[i]},
            title=f"Insertion (AUC {result.insertion_auc[i]:.3f}, higher is better)"), variant=str(i))


# --------------------------------------------------------------------------- computing


def curve_params_for(method: str, params: Any) -> Any:
    """Deletion/insertion params that match an attribution's method, baseline and target."""
    shared = {s.name for s in field_specs(CurveParams)} & {s.name for s in field_specs(type(params))}
    return CurveParams(attribution=method, **{k: getattr(params, k) for k in shared if k != "attribution"})


def attribution_only(model: str, method: str, params: Any, pixels: np.ndarray) -> Any | None:
    """The attribution of ``pixels`` (cached), under a spinner; None when it could not be computed."""
    return computed(f"Computing {method_label(method)} on {model}…",
                    lambda: compute.run(method, model, params, pixels))


def attribution_curves(model: str, method: str, params: Any, pixels: np.ndarray, attribution: Any) -> Any | None:
    """Deletion/insertion curves for an attribution already computed (cached), under a spinner."""
    curve_params = curve_params_for(method, params)
    return computed("Deletion and insertion curves…",
                    lambda: compute.run("deletion_insertion", model, curve_params, pixels,
                                        depends_on=compute.key_of(method, model, params, pixels),
                                        follow_up=True, attributions=attribution))


# --------------------------------------------------------------------------- sanity check

SANITY_MAX_STEPS = 32  # IG steps of the re-run attributions (one run per layer re-initialised)
PASSES, FAILS = 0.3, 0.6  # mean Spearman rho after every layer is random: below passes, above fails


def sanity_params(method: str, params: Any) -> RandomisationParams:
    """The model-randomisation check of ``method`` with ``params``' target (and at most 32 IG steps)."""
    steps = min(int(getattr(params, "n_steps", SANITY_MAX_STEPS)), SANITY_MAX_STEPS)
    return RandomisationParams(attribution=method, n_steps=steps, target=int(getattr(params, "target", -1)))


def sanity_check(model: str, method: str, params: Any, pixels: np.ndarray) -> Any | None:
    """The cascading model-randomisation check (Adebayo et al. 2018) of this attribution, on a worker of lower
    CPU priority, with its progress shown; None when it could not run."""
    return computed("Sanity check: re-initialising the model's layers from the output down…",
                    lambda: compute.run("randomisation_check", model, sanity_params(method, params), pixels,
                                        follow_up=True, progress_in="layers"))


def sanity_verdict(result: Any) -> tuple[str, str]:
    """("pass" | "unclear" | "fail", the verdict in words) from the rank correlation after every layer is random."""
    final = float(np.nanmean(result.spearman[-1]))
    method = method_label(result.attribution_method)
    if final < PASSES:
        return "pass", (f"Passes: with every layer re-initialised, the {method} map keeps a rank correlation of "
                        f"only {final:.2f} with the trained model's. The map depends on what the model learned.")
    if final > FAILS:
        return "fail", (f"Fails: with every layer re-initialised, the {method} map still has a rank correlation of "
                        f"{final:.2f} with the trained model's. It shows the input's structure more than the "
                        "model's reasoning: read it with care.")
    return "unclear", (f"Unclear: with every layer re-initialised, the {method} map keeps a rank correlation of "
                       f"{final:.2f} with the trained model's (passes below {PASSES}, fails above {FAILS}). Part of "
                       "the map comes from the input rather than the model.")


def sanity_panel(result: Any, i: int = 0) -> None:
    """The verdict in words, the trained and re-initialised maps side by side, and rho against layers."""
    kind, words = sanity_verdict(result)
    {"pass": messages.info, "unclear": messages.warning, "fail": messages.warning}[kind](words)
    maps = {"trained": result.attributions[i].reshape(28, 28)}
    maps.update({f"+ {name}": result.randomised[k, i].reshape(28, 28) for k, name in enumerate(result.layers)})
    st.caption("Each map is scaled by its own largest |value|: the question is where the attribution goes once the "
               "weights are random, not how much there is. Layers are re-initialised cumulatively, from the output "
               "down (Adebayo et al. 2018, https://arxiv.org/abs/1810.03292).")
    show_built(result, f"sanity-maps-{i}", "Sanity check maps", lambda: cascade_chart(maps), variant=str(i))
    show_built(result, f"sanity-rho-{i}", "Sanity check correlation", lambda: randomisation_chart(
        result.layers, result.spearman[:, i], title="Rank correlation with the trained model's map"), variant=str(i))
