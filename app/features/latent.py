"""The Latent space page: the VAEs' held-out set as a scatter, the manifold grid, traversals, interpolation, KL.

The held-out set as a scatter of its posterior means (projected to 2-D when the latent is
bigger), clickable and brushable; the manifold grid; traversals of every dimension around the
chosen digit; linear and spherical interpolation to a second digit; KL per dimension with
active units and the linear probe.

Link: ``/latent?model=vae-16d&proj.method=umap&sample=3&to=512&trav.k=2.0`` (``grid.*``,
``trav.*`` and ``interp.*`` params that differ from their defaults).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import streamlit as st

import analyzers
from analyzers import LatentStatsParams, params_from_mapping
from app.charts.base import curves_chart
from app.charts.images import digit_uri, mosaic
from app.charts.latent import BRUSH, POINT, kl_chart, scatter_chart, scatter_frame
from app.links.catalogue import default_projection, latent_dim, latent_models, projection_methods
from app.links.codec import (
    HELDOUT_SIZE, InputRef, Params, Query, QueryReader, defaults, params_object, read_params, saved_link,
    write_params,
)
from app.runtime import compute
from app.runtime.memo import once_per_process
from app.runtime.models import heldout_split, sample_pixels
from app.ui import messages, session
from app.ui.figures import digit, picture, show, show_built
from app.ui.pickers import heldout_picker
from app.ui.results import computed, saved_view
from app.ui.widgets import build_params, number_field, params_form

DEFAULT_MODEL = "vae-2d"
DEFAULT_SECOND_SAMPLE = 700  # the other end of an interpolation (a 7 in the shipped split)

METHOD_LABELS = {"identity": "none (the 2-D latent itself)", "pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}

METHOD_FIELDS = {"umap": ("n_neighbors", "min_dist", "seed"), "tsne": ("perplexity", "seed")}

SLOW_METHODS = ("tsne", "umap")

MAX_SHOWN = 60  # selected digits drawn at once

FIT = 660  # px: pictures shrink to fit the page's output column


# --------------------------------------------------------------------------- link

# Latent page: the params of its four analyses, each under its own URL prefix.
LATENT_PARTS = {"proj": "ProjectionParams", "grid": "GridParams", "trav": "TraversalParams",
                "interp": "InterpolationParams"}


def latent_params_class(part: str) -> type:
    """The params dataclass of one part of the Latent page (``proj``, ``grid``, ``trav``, ``interp``)."""
    return getattr(analyzers, LATENT_PARTS[part])


def latent_defaults(model: str, part: str) -> Params:
    """Default params of one part for ``model`` (its projection default depends on the latent size)."""
    if part == "proj":
        return defaults(latent_params_class(part), method=default_projection(model))
    return defaults(latent_params_class(part))


def _latent_part(r: QueryReader, model: str, part: str) -> Params:
    params = read_params(r, latent_params_class(part), part, latent_defaults(model, part))
    if part == "proj" and dict(params)["method"] not in projection_methods(model):
        r.problems.append(f"{model} has a {latent_dim(model)}-D latent, so it needs a projection: "
                          f"choose one of {', '.join(projection_methods(model))}. Showing "
                          f"{default_projection(model)}.")
        return tuple((k, default_projection(model) if k == "method" else v) for k, v in params)
    if part == "grid":
        return _checked_grid_dims(r, model, params)
    return params


def _checked_grid_dims(r: QueryReader, model: str, params: Params) -> Params:
    values = dict(params)
    d = latent_dim(model)
    if int(values["dim_x"]) < d and int(values["dim_y"]) < d and values["dim_x"] != values["dim_y"]:
        return params
    r.problems.append(f"The manifold grid needs two different latent dimensions of {model}, 0 to {d - 1}; "
                      "showing dimensions 0 and 1.")
    return tuple((k, {"dim_x": "0", "dim_y": "1"}.get(k, v)) for k, v in params)


@dataclass(frozen=True)
class LatentView:
    """The Latent space page: a VAE, how its latent is projected, an input and the other end of a path.

    URL: ``?model=vae-16d&proj.method=umap&sample=3&to=512`` with ``grid.*``, ``trav.*`` and
    ``interp.*`` params that differ from their defaults.
    """

    PAGE: ClassVar[str] = "latent"

    model: str = DEFAULT_MODEL
    input: InputRef = InputRef()
    other: int = DEFAULT_SECOND_SAMPLE  # held-out index at the far end of the interpolation
    parts: tuple[tuple[str, Params], ...] = ()  # (part, params); missing = defaults
    link: str | None = None

    def __post_init__(self) -> None:
        given = dict(self.parts)  # canonical form: every part, in LATENT_PARTS order
        object.__setattr__(self, "parts", tuple((p, given.get(p) or latent_defaults(self.model, p))
                                                for p in LATENT_PARTS))

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[LatentView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        model = r.choice("model", latent_models(), DEFAULT_MODEL, "latent model")
        ref = InputRef.read(r, uploads)
        other = r.integer("to", 0, HELDOUT_SIZE - 1, DEFAULT_SECOND_SAMPLE, "to (the other end of the path)")
        parts = tuple((part, _latent_part(r, model, part)) for part in LATENT_PARTS)
        return cls(model, ref, other, parts), r.finish()

    def params(self, part: str) -> Params:
        """Canonical params of one part."""
        return dict(self.parts)[part]

    def params_object(self, part: str) -> Any:
        """The validated params dataclass of one part."""
        return params_object(latent_params_class(part), self.params(part))

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        query = {"model": self.model, **self.input.to_query(), "to": str(self.other)}
        for part in LATENT_PARTS:
            query.update(write_params(self.params(part), latent_defaults(self.model, part), part))
        return query


# --------------------------------------------------------------------------- settings


def _current(seed: LatentView, model: str, part: str) -> Any:
    params = seed.params(part) if model == seed.model else latent_defaults(model, part)
    return params_from_mapping(latent_params_class(part), dict(params))


def projection_settings(keys: session.WidgetKeys, seed: LatentView, model: str, host: Any = st) -> Any:
    """The projection (identity for 2-D latents, PCA, t-SNE, UMAP) and its own settings."""
    current = _current(seed, model, "proj")
    methods = list(projection_methods(model))
    method = host.selectbox("Projection", methods, key=keys.key("proj.method", current.method, methods),
                            format_func=METHOD_LABELS.get,
                            help="How the posterior means are drawn in 2-D. t-SNE and UMAP are fitted once and cached.")
    values = {"method": method}
    if method in METHOD_FIELDS:
        with host.expander(f"{METHOD_LABELS[method]} settings"):
            values.update({f: number_field(keys, "proj", f, current, host) for f in METHOD_FIELDS[method]})
    kept = {k: getattr(current, k) for k in ("n_neighbors", "min_dist", "perplexity", "seed")}
    return build_params(type(current), {**kept, **values}, current)


def other_end(keys: session.WidgetKeys, seed: LatentView, host: Any = st) -> int:
    """The held-out digit at the far end of the interpolation."""
    return heldout_picker(keys, seed.other, "Path to", host)


def grid_settings(keys: session.WidgetKeys, seed: LatentView, model: str) -> Any:
    """Grid size and span, and (for latents above 2-D) the two dimensions it spans."""
    current = _current(seed, model, "grid")
    cols = st.columns(4)
    values = {"n": number_field(keys, "grid", "n", current, cols[0]),
              "span": number_field(keys, "grid", "span", current, cols[1]), "dim_x": 0, "dim_y": 1}
    d = latent_dim(model)
    if d > 2:
        dims = list(range(d))
        values["dim_x"] = cols[2].selectbox("columns: dimension", dims, key=keys.key("grid.dim_x", current.dim_x, dims))
        values["dim_y"] = cols[3].selectbox("rows: dimension", dims, key=keys.key("grid.dim_y", current.dim_y, dims))
        if values["dim_x"] == values["dim_y"]:
            messages.error("Choose two different dimensions for the grid; showing dimensions 0 and 1.")
            values["dim_x"], values["dim_y"] = 0, 1
    return build_params(type(current), values, current)


def part_settings(keys: session.WidgetKeys, seed: LatentView, model: str, part: str) -> Any:
    """Traversal or interpolation settings drawn from their params dataclass."""
    current = _current(seed, model, part)
    return params_form(type(current), current, keys, prefix=part)


# --------------------------------------------------------------------------- results


def _projection_note(method: str) -> str:
    if method in SLOW_METHODS:
        return (f"{METHOD_LABELS[method]} of the 1,000 held-out digits: read from the disk cache, or fitted once "
                "(up to a minute on a small CPU) and cached for every later visit…")
    return f"Encoding the held-out digits ({METHOD_LABELS[method]})…"


def _work(view: LatentView, pixels: np.ndarray) -> dict[str, tuple[str, Any]]:
    """Each part of the page: what the spinner says, and how to compute it. In the order they are drawn."""
    m, p = view.model, view.params_object
    pair = np.stack([pixels, sample_pixels(view.other)])  # (2, 28, 28)
    return {
        "projection": (_projection_note(p("proj").method), lambda: compute.run("latent_projection", m, p("proj"))),
        "grid": ("Decoding the manifold grid…", lambda: compute.run("manifold_grid", m, p("grid"))),
        "traversal": ("Traversing every dimension…", lambda: compute.run("latent_traversal", m, p("trav"), pixels)),
        "interpolation": ("Interpolating…", lambda: compute.run("latent_interpolation", m, p("interp"), pair)),
        "statistics": ("KL, active units and the linear probe…",
                       lambda: compute.run("latent_statistics", m, LatentStatsParams())),
    }


def results_and_panels(view: LatentView, picked: Any, boxes: dict[str, Any]) -> dict[str, Any]:
    """Every part from the saved link or computed, each drawn in its box as soon as it is ready.

    ``boxes`` maps a part (projection, grid, interpolation, statistics, traversal) to the
    container it is drawn in; the scatter appears before the slower parts are computed.
    """
    with boxes["projection"]:
        saved = saved_view(view.link)
    results: dict[str, Any] = {}
    for name, (description, run) in _work(view, picked.pixels).items():
        with boxes[name]:
            result = saved.results.get(name) if saved is not None else computed(description, run)
            if result is None:
                continue
            results[name] = result
            _draw(name, results, view, picked)
    if "statistics" in results and "traversal" in results:
        with boxes["traversal"]:
            active_caption(results["statistics"])
    return results


def _draw(name: str, results: dict[str, Any], view: LatentView, picked: Any) -> None:
    if name == "projection":
        scatter(results, view, marked=[view.other] + ([] if picked.ref.upload else [picked.ref.sample]))
    elif name == "grid":
        grid_panel(results["grid"], view.model)
    elif name == "interpolation":
        interpolation_panel(results["interpolation"], picked.label, view.other)
    elif name == "statistics":
        statistics_panel(results["statistics"])
    else:
        traversal_panel(results["traversal"])


# --------------------------------------------------------------------------- scatter


@once_per_process()
def heldout_uris() -> tuple[str, ...]:
    """Every held-out digit as a small PNG data URI, for the scatter's image tooltips (once per process)."""
    x = heldout_split().x_heldout.astype(np.float32) / 255.0
    return tuple(digit_uri(d) for d in x)


def _selected(selection: Any, coords: np.ndarray) -> tuple[list[int], list[int]]:
    """Indices clicked (point selection) and inside the dragged box (interval selection)."""
    clicked = [int(p["index"]) for p in (selection.get(POINT) or []) if "index" in p]
    box = selection.get(BRUSH) or {}
    inside: list[int] = []
    if "x" in box and "y" in box:
        (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
        mask = (coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0) & (coords[:, 1] <= y1)
        inside = [int(i) for i in np.flatnonzero(mask)]
    return clicked, inside


def scatter(results: dict[str, Any], view: LatentView, marked: list[int]) -> None:
    """The held-out set in latent space, coloured by class; click or drag to see the digits."""
    proj = results["projection"]
    d = proj.mu.shape[1]
    names = ("z₀", "z₁") if proj.method == "identity" else (f"{METHOD_LABELS[proj.method]} 1",
                                                            f"{METHOD_LABELS[proj.method]} 2")
    uris = heldout_uris() if len(proj.coords) == len(heldout_uris()) else None
    title = f"{len(proj.coords):,} held-out digits, {d}-D posterior means" + (
        "" if proj.method == "identity" else f" through {METHOD_LABELS[proj.method]}")
    st.caption("Hover for the digit, click a point to show it, drag a box to show every digit inside "
               "(double-click clears). Diamonds: the two ends of the interpolation." + (
                   " Read from the disk cache." if proj.cached else ""))
    selection = show_built(proj, f"scatter-{marked}", "Latent scatter", lambda: (
        scatter_chart(proj.coords, proj.labels, uris, title, *names, marked=marked),
        scatter_frame(proj.coords, proj.labels)), select=f"scatter-{view.model}-{proj.method}")
    clicked, inside = _selected(selection, proj.coords)
    _selection_digits(clicked, inside, proj.labels)


def _selection_digits(clicked: list[int], inside: list[int], labels: np.ndarray) -> None:
    if clicked:
        i = clicked[0]
        digit(sample_pixels(i), f"held-out #{i}, labelled {int(labels[i])}")
    if inside:
        shown = inside[:MAX_SHOWN]
        counts = pd.Series(labels[inside]).value_counts().sort_index()
        st.caption(f"{len(inside)} digits in the box" + (f" (the first {MAX_SHOWN} shown)" if len(inside) > MAX_SHOWN
                                                         else "") + ": " +
                   ", ".join(f"{n}× {c}" for c, n in counts.items()))
        per_row = 12
        images = np.zeros((-(-len(shown) // per_row) * per_row, 28, 28), dtype=np.float32)
        images[: len(shown)] = [sample_pixels(i) for i in shown]
        st.image(mosaic(images.reshape(-1, per_row, 28, 28), scale=2), output_format="PNG")
    if not clicked and not inside:
        st.caption("Nothing selected yet.")


# --------------------------------------------------------------------------- panels


def grid_panel(result: Any, model: str) -> None:
    """Digits decoded from a grid over two latent dimensions (Kingma & Welling 2014, fig. 4)."""
    dx, dy = result.dims
    q = result.quantiles
    others = "" if latent_dim(model) == 2 else " Every other dimension is 0 (the prior mean)."
    caption = (f"Columns: z{dx} from {q[0]:.2f} to {q[-1]:.2f}; rows: z{dy} from {q[-1]:.2f} (top) to {q[0]:.2f}. "
               f"Values are N(0, 1) quantiles.{others}")
    picture(mosaic(result.images, pad=1, scale=3, max_width=FIT), caption, key="manifold-grid")


def traversal_panel(result: Any) -> None:
    """Every latent dimension swept around the digit's posterior mean, a row per dimension."""
    offsets = result.offsets
    picture(mosaic(result.images[0], pad=1, scale=3, max_width=FIT),
            f"Row k: z_k moved from {offsets[0]:+.1f} to {offsets[-1]:+.1f} prior standard deviations around the "
            "digit's posterior mean (middle column: no change), every other dimension kept.", key="traversal")


def active_caption(stats: Any) -> None:
    """Which dimensions are active, under the traversal whose rows they explain."""
    active = [int(i) for i in np.flatnonzero(stats.active)]
    st.caption(f"Active dimensions (Burda et al. 2016): {', '.join(map(str, active)) or 'none'}. "
               "Rows of inactive dimensions barely change: the decoder ignores them.")


def interpolation_panel(result: Any, start: str, end: int) -> None:
    """Linear and spherical interpolation between the two digits' posterior means, and the norm along each."""
    st.caption(f"From {start} to held-out #{end}, {result.t.size} steps.")
    for name, images in (("Linear", result.images_linear), ("Spherical (slerp, White 2016)", result.images_slerp)):
        picture(mosaic(images[None], pad=1, scale=3, max_width=FIT), name,
                key=f"interpolation-{name.split()[0].lower()}")
    norms = {"linear": np.linalg.norm(result.z_linear, axis=1), "slerp": np.linalg.norm(result.z_slerp, axis=1)}
    chart = curves_chart(result.t, norms, title="Distance from the origin along the path", x_title="t",
                         y_title="‖z‖")
    show(chart, "Norm along the path", key="interpolation-norm")


def statistics_panel(result: Any) -> None:
    """KL per dimension, active units and linear-probe accuracy."""
    cols = st.columns(3)
    cols[0].metric("KL, all dimensions", f"{float(result.kl_per_dim.sum()):.2f} nats",
                   help="Mean over the held-out digits of KL(q(z|x) ‖ N(0, I))")
    cols[1].metric("Active units", f"{int(result.active.sum())} of {result.active.size}",
                   help=f"Dimensions whose posterior mean varies across digits: Cov_x(E_q[z_k]) > {result.threshold:g}")
    acc = float(result.probe_accuracy)
    cols[2].metric("Linear probe", "n/a" if not np.isfinite(acc) else f"{acc:.1%}",
                   help=f"Logistic regression on the posterior means, {result.probe_folds}-fold cross-validated "
                        f"accuracy (± {result.probe_std:.1%}) on {result.n_inputs} held-out digits")
    show(kl_chart(result.kl_per_dim, result.mu_variance, result.active, result.threshold), "KL per dimension",
         key="kl")


def table(results: dict[str, Any]) -> pd.DataFrame | None:
    """The scatter as a table (index, x, y, label, mu_0..): what the CSV download holds."""
    proj = results.get("projection")
    if proj is None:
        return None
    frame = scatter_frame(proj.coords, proj.labels)
    return pd.concat([frame, pd.DataFrame(proj.mu, columns=[f"mu_{k}" for k in range(proj.mu.shape[1])])], axis=1)
