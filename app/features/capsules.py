"""The Capsules page: capsule lengths, routing per iteration, live pose sliders and reconstructions.

Capsule lengths (the class scores), routing coefficients of every iteration on the primary
capsules' 6 x 6 grid and per primary type, reconstructions from the predicted and a chosen
class capsule, 16 pose sliders that redraw the reconstruction live, and the paper's pose
perturbation grid (Sabour, Frosst & Hinton 2017, https://arxiv.org/abs/1710.09829).

Link: ``/capsules?sample=500&target=3&routing_class=5&pose.span=0.3`` (-1 = the predicted class).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import streamlit as st

from analyzers import CapsuleParams, PoseParams
from app.charts.base import bar_chart
from app.charts.capsules import routing_grid_chart, routing_types_chart
from app.charts.images import mosaic
from app.links.catalogue import capsule_models
from app.links.codec import (
    InputRef, Params, Query, QueryReader, canonical, defaults, params_object, read_params, saved_link, write_params,
)
from app.runtime import compute, pose
from app.runtime.guards import AnalysisError
from app.ui import messages, session
from app.ui.figures import digit, picture, show, show_built
from app.ui.results import computed, results_for
from app.ui.widgets import build_params, number_field

DEFAULT_MODEL = "capsnet"

CLASSES = list(range(-1, 10))

SLIDER_STEPS = 10  # slider positions on each side of 0


# --------------------------------------------------------------------------- link

POSE_FIELDS = ("steps", "span")  # the pose perturbation's own settings; its target is the view's


def _pose_params() -> Params:
    return tuple((k, v) for k, v in defaults(PoseParams) if k in POSE_FIELDS)


@dataclass(frozen=True)
class CapsuleView:
    """The Capsules page: a capsule network, a digit, the class capsule to decode, the class whose routing is drawn.

    URL: ``?sample=500&target=3&routing_class=5`` (-1 = the predicted class) with ``pose.steps``
    and ``pose.span`` when they differ from their defaults.
    """

    PAGE: ClassVar[str] = "capsules"

    model: str = DEFAULT_MODEL
    input: InputRef = InputRef()
    target: int = -1
    routing_class: int = -1  # digit capsule whose routing coefficients are drawn; -1 = the predicted one
    pose: Params = field(default_factory=_pose_params)  # steps and span (target apart)
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[CapsuleView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        models = capsule_models()
        model = r.choice("model", models, DEFAULT_MODEL if DEFAULT_MODEL in models else models[0],
                         "capsule model")
        ref = InputRef.read(r, uploads)
        target = r.integer("target", -1, 9, -1, "target (the class capsule to decode; -1 = predicted)")
        routing_class = r.integer("routing_class", -1, 9, -1,
                                  "routing_class (the digit capsule whose routing is drawn; -1 = predicted)")
        pose = read_params(r, PoseParams, "pose", fields=POSE_FIELDS)
        return cls(model, ref, target, routing_class, tuple((k, v) for k, v in pose if k in POSE_FIELDS)), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        query = {"model": self.model, **self.input.to_query(), "target": str(self.target)}
        if self.routing_class != -1:
            query["routing_class"] = str(self.routing_class)
        return {**query, **write_params(self.pose, _pose_params(), "pose")}

    def capsule_params(self) -> Any:
        """CapsuleParams: reconstruct from this view's target capsule."""
        return CapsuleParams(target=self.target)

    def pose_params(self) -> Any:
        """PoseParams: this view's steps and span, on its target capsule."""
        return params_object(PoseParams, (*self.pose, ("target", str(self.target))))


# --------------------------------------------------------------------------- settings


def class_picker(keys: session.WidgetKeys, name: str, label: str, seed: int, help: str, host: Any = st) -> int:
    """A digit class, or -1 for "the predicted class"."""
    return host.selectbox(label, CLASSES, key=keys.key(name, seed, CLASSES), help=help,
                          format_func=lambda c: "the predicted class" if c < 0 else str(c))


def pose_settings(keys: session.WidgetKeys, seed: CapsuleView, host: Any = st) -> Params:
    """Steps and span of the pose perturbation grid (also the sliders' range)."""
    current = seed.pose_params()
    with host.expander("Pose perturbation settings"):
        values = {f: number_field(keys, "pose", f, current, host) for f in POSE_FIELDS}
    params = build_params(type(current), {**values, "target": current.target}, current)
    return tuple((k, v) for k, v in canonical(params) if k in POSE_FIELDS)


# --------------------------------------------------------------------------- results


def capsule_results(view: CapsuleView, pixels: np.ndarray) -> dict[str, Any] | None:
    """The view's saved results, or lengths/routing/reconstructions and the pose perturbation computed."""
    return results_for(view.link, lambda: _compute(view, pixels))


def _compute(view: CapsuleView, pixels: np.ndarray) -> dict[str, Any] | None:
    capsules = computed(f"Routing {view.model}…",
                        lambda: compute.run("capsule_routing", view.model, view.capsule_params(), pixels))
    if capsules is None:
        return None
    perturbed = computed("Perturbing the pose…",
                         lambda: compute.run("pose_perturbation", view.model, view.pose_params(), pixels))
    return {"capsules": capsules} if perturbed is None else {"capsules": capsules, "pose": perturbed}


# --------------------------------------------------------------------------- panels


def lengths_panel(result: Any) -> None:
    """Prediction, capsule lengths, and the reconstructions from the predicted and the chosen capsule."""
    pred, target = int(result.predictions[0]), int(result.targets[0])
    left, right = st.columns([1.3, 1])
    with left:
        st.metric("Prediction", result.labels[pred], help="The digit capsule with the longest pose vector")
        show(bar_chart(result.labels, result.lengths[0], title="Capsule lengths", value_name="length",
                       highlight=pred), "Capsule lengths", key="capsule-lengths")
    with right:
        pixels = np.asarray(result.inputs[0]).reshape(28, 28)
        row = np.stack([pixels, result.recon_predicted[0], result.recon_target[0]])[None]  # (1, 3, 28, 28)
        picture(mosaic(row, pad=2, scale=3), f"Input · decoded from capsule {pred} (predicted) · decoded from "
                f"capsule {target}", key="reconstructions")
        st.caption("The decoder sees one capsule's 16-D pose, every other capsule masked to zero.")


def routing_panel(result: Any, routing_class: int) -> None:
    """Routing coefficients c_ij of every iteration, per 6 x 6 position and per primary capsule type."""
    cls = int(result.predictions[0]) if routing_class < 0 else routing_class
    grid = result.routing_grid[:, 0, :, :, cls]  # (iters, 6, 6)
    st.caption("Routing by agreement (eq. 3): each primary capsule splits its vote over the 10 digit capsules "
               "(coefficients c_ij sum to 1); iteration 1 is uniform (0.1), later ones follow agreement.")
    show_built(result, f"routing-grid-{cls}", "Routing per grid position", lambda: (
        routing_grid_chart(grid, f"To digit capsule {cls}, per grid position (mean over the 16 types)"), None))
    show_built(result, "routing-types", "Routing per primary type", lambda: (
        routing_types_chart(result.routing_types[:, 0], result.labels,
                            "Per primary capsule type (mean over the 36 positions)"), None))


def _slider_values(keys: session.WidgetKeys, span: float, n_dims: int) -> list[float]:
    step = span / SLIDER_STEPS
    values = []
    cols = st.columns(4, gap="small")
    for d in range(n_dims):
        key = keys.key(f"slider.{d}", 0.0)
        st.session_state[key] = float(np.clip(st.session_state[key], -span, span))  # the range may have shrunk
        values.append(cols[d % 4].slider(f"dim {d}", -span, span, step=step, key=key, format="%+.3f"))
    return values


@st.fragment
def pose_sliders(model: str, pixels: np.ndarray, result: Any, span: float) -> None:
    """16 sliders on the decoded capsule's pose; only this part reruns while they move."""
    keys = session.WidgetKeys(CapsuleView.PAGE)  # never re-seeded from a link inside the fragment
    target = int(result.targets[0])
    sliders, picture = st.columns([2.2, 1])
    with sliders:
        if st.button("Reset to the digit's own pose", icon=":material/restart_alt:"):
            for d in range(16):
                keys.forget(f"slider.{d}")
        offsets = _slider_values(keys, span, 16)
    with picture:
        if not any(offsets):
            image = result.recon_target[0]
        else:
            try:
                image = pose.reconstruction(model, pixels, target, offsets)
            except AnalysisError as e:
                messages.error(f"The pose cannot be decoded: {e}")
                return
        digit(image, f"Decoded from capsule {target} with these offsets", scale=7)


def perturbation_panel(result: Any) -> None:
    """The paper's fig. 4: each pose dimension of the capsule shifted over the span, a row per dimension."""
    offsets = result.offsets
    picture(mosaic(result.images[0], pad=1, scale=2, max_width=660),
            f"Capsule {int(result.targets[0])}: row d adds {offsets[0]:+.2f} … {offsets[-1]:+.2f} to pose "
            "dimension d (middle column: unchanged).", key="pose-perturbation")


def table(results: dict[str, Any]) -> pd.DataFrame:
    """Capsule lengths as a table, for the CSV download."""
    result = results["capsules"]
    return pd.DataFrame({"class": list(result.labels), "length": result.lengths[0],
                         "predicted": [i == int(result.predictions[0]) for i in range(len(result.labels))]})
