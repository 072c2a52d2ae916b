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
from app.charts.attribution import (
    attribution_chart, cascade_chart, randomisation_chart, user_image_chart, word_attribution_chart, word_attribution_frame,
)
from app.charts.base import curves_chart, scores_chart
from app.links.catalogue import (
    attribution_methods, attribution_models, default_params, default_text_model, is_text_classifier_model, params_class,
    target_labels,
)
from app.links.codec import InputRef, Params, Query, QueryReader, param_key, read_params, read_text, saved_link
from app.runtime import compute
from app.ui import messages
from app.ui.figures import show_built
from app.ui.pickers import PickedInput, input_picker, method_label, model_image_picker, text_picker
from app.ui.results import computed
from app.ui.vega import attribution_spec

DEFAULT_MODEL = "vit-dot"
DEFAULT_METHOD = "integrated_gradients"
DEFAULT_TEXT = "The film was a delight from start to finish."
WORDS_PER_LINE = 34  # characters a line of the word chart holds: 306 px, half the output column


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
    text: str = DEFAULT_TEXT  # the text a text classifier explains (``?text=...``)

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[AttributionView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        text_link = r.raw("text") is not None and r.raw("model") is None  # ?text=... alone: the default text model
        default = default_text_model() if text_link and is_text_classifier_model(default_text_model()) else DEFAULT_MODEL
        model = r.choice("model", attribution_models(), default, "model")
        methods = attribution_methods(model)
        method = r.choice("method", methods, DEFAULT_METHOD if DEFAULT_METHOD in methods else methods[0],
                          f"method for {model}")
        text = read_text(r, "text", DEFAULT_TEXT, "Text") if is_text_classifier_model(model) else DEFAULT_TEXT
        ref = InputRef.read(r, uploads)
        params = _checked_target(r, model, read_params(r, params_class(method, model)))
        check = r.choice("check", ("0", "1"), "0", "check (the sanity check: 1 shows it)") == "1"
        return cls(model, method, params, ref, check, text=text), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        defaults = dict(default_params(self.method, self.model))
        changed = {param_key(k): v for k, v in self.params if defaults.get(k) != v}
        shown = {"text": self.text} if is_text_classifier_model(self.model) else self.input.to_query()
        return {"model": self.model, "method": self.method, **shown, **changed,
                **({"check": "1"} if self.check else {})}

    def params_object(self) -> Any:
        """The validated params dataclass of this view's method (TextIGParams for a text classifier's IG)."""
        return params_from_mapping(params_class(self.method, self.model), dict(self.params))


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class AttributionInput(PickedInput):
    """What the page explains: a digit, a user's image (1, C, H, W), or a text (``pixels`` is then ``[text]``)."""

    text: str = DEFAULT_TEXT

    @property
    def share_inputs(self) -> dict[str, np.ndarray]:
        """The arrays a share keeps beside the results: the image analysed (a text lives in the link)."""
        return {"pixels": self.pixels} if isinstance(self.pixels, np.ndarray) else {}


def attribution_input(keys: Any, seed: AttributionView, model: str, host: Any = st) -> AttributionInput:
    """The input that fits ``model``: a text for a text classifier, an upload prepared by a user's image model's
    own preprocessing, or a held-out digit / an upload framed like MNIST for the zoo's digit models."""
    from app.runtime.compute import spec_of
    from app.runtime.inputs import uses_model_preprocessing

    if is_text_classifier_model(model):
        text, problem = text_picker(keys, seed.text, model, host=host)
        if text is None:
            return AttributionInput(None, seed.input, "", problem, text=seed.text)
        return AttributionInput([text], seed.input, f"“{text[:40]}{'…' if len(text) > 40 else ''}”", text=text)
    if uses_model_preprocessing(spec_of(model)):
        picked = model_image_picker(keys, seed.input, model, host=host)
    else:
        picked = input_picker(keys, seed.input, host=host)
    return AttributionInput(picked.pixels, picked.ref, picked.label, picked.problem, text=seed.text)


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
    """The signed attribution over the input (digit, a user's RGB or grey image, or a text's words), with a save menu."""
    if result.tokens:
        return word_attributions(result, title=title, key=key, i=i)
    if np.shape(result.inputs[i]) != (1, 28, 28):  # a user's image: RGB at the model's size, grid at most 56 a side
        image, attr = np.asarray(result.inputs[i]), np.asarray(result.attributions[i])
        show_built(result, key, title, lambda: user_image_chart(image, attr, vmax, title=title),
                   variant=f"{i}:{vmax}:{title}")
        return
    pixels = np.asarray(result.inputs[i]).reshape(28, 28)
    attr = np.asarray(result.attributions[i]).reshape(28, 28)
    show_built(result, key, title, lambda: attribution_chart(pixels, attr, vmax, title=title),
               spec=lambda: attribution_spec(pixels, attr, vmax, title=title),
               variant=f"{i}:{vmax}:{title}")


def word_attributions(result: Any, *, title: str, key: str = "attribution", i: int = 0) -> None:
    """A text's attributions as readable words (subword pieces merged, their scores summed; pieces in the tooltip)."""
    pieces = tuple(result.tokens[i])
    scores = np.asarray(result.attributions[i][: len(pieces)])
    st.caption("Layer Integrated Gradients through the word embeddings: red words raise the explained class's logit, "
               "blue ones lower it. Words are the tokenizer's pieces put back together (their scores summed); hover "
               "a word for its pieces.")
    show_built(result, key, title, lambda: (word_attribution_chart(pieces, scores, title=title, per_line=WORDS_PER_LINE),
                                            word_attribution_frame(pieces, scores)), variant=f"{i}:{title}")


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
    """The attribution of ``pixels`` (cached), under a spinner; None when it could not be computed.

    IG, SmoothGrad and GradientSHAP on images are sharpened progressively unless the visitor turns it off
    (:mod:`app.features.attribution_refine`): drawn at once, refined in place until the check passes."""
    from app.features import attribution_refine as refine  # issue 23
    if refine.offered(model, method) and refine.toggle():
        return refine.progressive_attribution(model, method, params, pixels)
    return computed(f"Computing {method_label(method)} on {model}…",
                    lambda: compute.run(method, model, params, pixels))


def attribution_curves(model: str, method: str, params: Any, pixels: np.ndarray, attribution: Any) -> Any | None:
    """Deletion/insertion curves for an attribution already computed (cached), under a spinner; None for texts."""
    if not isinstance(pixels, np.ndarray):
        return None
    curve_params = curve_params_for(method, params)
    return computed("Deletion and insertion curves…",
                    lambda: compute.run("deletion_insertion", model, curve_params, pixels,
                                        depends_on=compute.key_of(method, model, params, pixels),
                                        follow_up=True, attributions=attribution))


# --------------------------------------------------------------------------- sanity check


def _map2d(a: np.ndarray) -> np.ndarray:
    """An attribution (C, H, W) as one (H, W) map: summed over channels, in blocks of at most 56 a side."""
    from app.charts.images import grid_factor, pool

    m = np.asarray(a, dtype=np.float64).sum(0) if np.ndim(a) == 3 else np.asarray(a, dtype=np.float64)
    return pool(m, grid_factor(m.shape), "sum")


def offers_sanity_check(model: str) -> bool:
    """Whether the model-randomisation check fits the model (image models; not texts)."""
    return not is_text_classifier_model(model)

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
    maps = {"trained": _map2d(result.attributions[i])}
    maps.update({f"+ {name}": _map2d(result.randomised[k, i]) for k, name in enumerate(result.layers)})
    st.caption("Each map is scaled by its own largest |value|: the question is where the attribution goes once the "
               "weights are random, not how much there is. Layers are re-initialised cumulatively, from the output "
               "down (Adebayo et al. 2018, https://arxiv.org/abs/1810.03292).")
    show_built(result, f"sanity-maps-{i}", "Sanity check maps", lambda: cascade_chart(maps), variant=str(i))
    show_built(result, f"sanity-rho-{i}", "Sanity check correlation", lambda: randomisation_chart(
        result.layers, result.spearman[:, i], title="Rank correlation with the trained model's map"), variant=str(i))
