"""The Latent space page: the VAEs' held-out set as a scatter, the manifold grid, traversals, interpolation, KL.

The held-out set as a scatter of its posterior means (projected to 2-D when the latent is
bigger), clickable and brushable; the manifold grid; traversals of every dimension around the
chosen digit; linear and spherical interpolation to a second digit; KL per dimension with
active units and the linear probe.

Link: ``/latent?model=vae-16d&proj.method=umap&sample=3&to=512&trav.k=2.0`` (``grid.*``,
``trav.*`` and ``interp.*`` params that differ from their defaults).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import streamlit as st

import analyzers
from analyzers import LatentStatsParams, params_from_mapping
from app.charts.latent import scatter_frame
from app.features.latent_panels import (
    METHOD_LABELS, grid_panel, heldout_uris, interpolation_panel, scatter, statistics_panel, traversal_panel,
)
from app.links.binding import Bound
from app.links.catalogue import default_projection, latent_dim, latent_models, projection_methods
from app.links.codec import (
    HELDOUT_SIZE, InputRef, Params, Query, QueryReader, defaults, params_object, read_params, saved_link,
    write_params,
)
from app.runtime import compute
from app.runtime.guards import AnalysisError
from app.runtime.memo import once_per_process
from app.runtime.models import sample_pixels
from app.ui import messages, session
from app.ui.pickers import heldout_picker, no_input
from app.ui.results import computed, saved_results, saved_view
from app.ui.widgets import build_params, number_field, params_form
from model_zoo import get_spec

__all__ = ["LATENT_PARTS", "LatentView", "heldout_uris", "latent_defaults", "most_active_dims"]

DEFAULT_MODEL = "vae-2d"
DEFAULT_SECOND_SAMPLE = 700  # the other end of an interpolation (a 7 in the shipped split)

METHOD_FIELDS = {"umap": ("n_neighbors", "min_dist", "seed"), "tsne": ("perplexity", "seed")}

SLOW_METHODS = ("tsne", "umap")

# The two latent dimensions with the most KL over the held-out split (``latent_statistics``), per shipped
# checkpoint (model, sha256): the manifold grid opens on them. Recorded so that a link without grid.* keys
# means the same grid in every process without an analysis first; another checkpoint has them computed
# once per process (tests/app/features/test_latent_defaults.py checks the record against the analysis).
MOST_ACTIVE = {
    ("vae-16d", "1a482280ed83a45c71d33fcdea91a4c73dbf0ee24b3c66ac2beb7731afbb64ac"): (0, 2),
}


# --------------------------------------------------------------------------- link

# Latent page: the params of its four analyses, each under its own URL prefix.
LATENT_PARTS = {"proj": "ProjectionParams", "grid": "GridParams", "trav": "TraversalParams",
                "interp": "InterpolationParams"}


def latent_params_class(part: str) -> type:
    """The params dataclass of one part of the Latent page (``proj``, ``grid``, ``trav``, ``interp``)."""
    return getattr(analyzers, LATENT_PARTS[part])


def latent_defaults(model: str, part: str) -> Params:
    """Default params of one part for ``model``: the projection depends on the latent size, the grid spans
    the two most active dimensions (:func:`most_active_dims`)."""
    if part == "proj":
        return defaults(latent_params_class(part), method=default_projection(model))
    if part == "grid":
        dim_x, dim_y = most_active_dims(model)
        return defaults(latent_params_class(part), dim_x=dim_x, dim_y=dim_y)
    return defaults(latent_params_class(part))


def most_active_dims(model: str) -> tuple[int, int]:
    """The two latent dimensions of ``model`` with the most KL over the held-out digits, most first.

    A 2-D latent has only (0, 1). For a shipped checkpoint they are recorded (:data:`MOST_ACTIVE`);
    for another one they are computed once per process from its ``latent_statistics``, a
    deterministic function of the checkpoint. If that analysis cannot run, (0, 1).
    """
    if latent_dim(model) <= 2:
        return 0, 1
    sha = get_spec(model).sha256 or ""
    recorded = MOST_ACTIVE.get((model, sha))
    if recorded is not None:
        return recorded
    try:
        return _computed_most_active(model, sha)
    except AnalysisError:
        return 0, 1


@once_per_process()
def _computed_most_active(model: str, sha: str) -> tuple[int, int]:
    """The two dimensions with the most KL, from the held-out statistics of checkpoint ``sha`` of ``model``."""
    kl = compute.run("latent_statistics", model, LatentStatsParams()).kl_per_dim  # (D,)
    first, second = np.argsort(-np.asarray(kl, dtype=np.float64), kind="stable")[:2]
    return int(first), int(second)


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
                      f"showing {_default_dims_text(model)}.")
    fallback = dict(latent_defaults(model, "grid"))
    return tuple((k, fallback[k] if k in ("dim_x", "dim_y") else v) for k, v in params)


def _default_dims_text(model: str) -> str:
    dim_x, dim_y = most_active_dims(model)
    return f"dimensions {dim_x} and {dim_y}" + ("" if latent_dim(model) <= 2 else ", the two with the most KL")


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


def with_saved_grid(bound: Bound[LatentView]) -> Bound[LatentView]:
    """A share link's view with the grid dimensions its saved grid was decoded on.

    A link stores only the settings that differ from the defaults of its day; a vae-16d link saved
    while the grid's default was dimensions 0 and 1 names no grid dimensions. Its saved grid says
    which they were, so the controls show them and the link's numbers stay on screen.
    """
    saved = saved_results(bound.view.link)
    grid = saved.results.get("grid") if saved is not None else None
    if grid is None:
        return bound
    dims = tuple(str(int(d)) for d in grid.dims)
    params = bound.view.params("grid")
    if dims == (dict(params)["dim_x"], dict(params)["dim_y"]):
        return bound
    fixed = tuple((k, dict(zip(("dim_x", "dim_y"), dims)).get(k, v)) for k, v in params)
    parts = tuple((p, fixed if p == "grid" else v) for p, v in bound.view.parts)
    return dataclasses.replace(bound, view=dataclasses.replace(bound.view, parts=parts))


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
            messages.error(f"Choose two different dimensions for the grid; showing {_default_dims_text(model)}.")
            values["dim_x"], values["dim_y"] = most_active_dims(model)
    return build_params(type(current), values, current)


def part_settings(keys: session.WidgetKeys, seed: LatentView, model: str, part: str) -> Any:
    """Traversal or interpolation settings drawn from their params dataclass."""
    current = _current(seed, model, part)
    return params_form(type(current), current, keys, prefix=part) or current


# --------------------------------------------------------------------------- results


def _projection_note(method: str) -> str:
    if method in SLOW_METHODS:
        return (f"{METHOD_LABELS[method]} of the 1,000 held-out digits: read from the disk cache, or fitted once "
                "(up to a minute on a small CPU) and cached for every later visit…")
    return f"Encoding the held-out digits ({METHOD_LABELS[method]})…"


DRAWN = ("projection", "grid", "statistics", "traversal", "interpolation")  # the KL labels the traversal's rows


def _work(view: LatentView, pixels: np.ndarray | None) -> dict[str, tuple[str, Any]]:
    """Each part of the page: what the spinner says, and how to compute it. In the order they are drawn
    (:data:`DRAWN`). Without an input (nothing uploaded, or a refused file), only the parts that do not
    need one."""
    m, p = view.model, view.params_object
    work = {
        "projection": (_projection_note(p("proj").method), lambda: compute.run("latent_projection", m, p("proj"))),
        "grid": ("Decoding the manifold grid…", lambda: compute.run("manifold_grid", m, p("grid"))),
        "statistics": ("KL, active units and the linear probe…",
                       lambda: compute.run("latent_statistics", m, LatentStatsParams())),
    }
    if pixels is None:
        return work
    pair = np.stack([pixels, sample_pixels(view.other)])  # (2, 28, 28)
    return {**work,
            "traversal": ("Traversing every dimension…", lambda: compute.run("latent_traversal", m, p("trav"), pixels)),
            "interpolation": ("Interpolating…", lambda: compute.run("latent_interpolation", m, p("interp"), pair))}


def results_and_panels(view: LatentView, picked: Any, boxes: dict[str, Any], keys: session.WidgetKeys) -> dict[str, Any]:
    """Every part from the saved link or computed, each drawn in its box as soon as it is ready.

    ``boxes`` maps a part (projection, grid, interpolation, statistics, traversal) to the
    container it is drawn in; the scatter appears before the slower parts are computed. ``keys``
    are the page's widget keys: a digit clicked in the scatter can become the input or the path's end.
    Without an input, the traversal and interpolation say why instead.
    """
    with boxes["projection"]:
        saved = saved_view(view.link)
    work = _work(view, picked.pixels)
    results: dict[str, Any] = {}
    for name in DRAWN:
        with boxes[name]:
            if saved is not None:
                result = saved.results.get(name)
            elif name in work:
                result = computed(*work[name])
            else:
                no_input(picked)
                continue
            if result is None:
                continue
            results[name] = result
            _draw(name, results, view, picked, keys)
    return results


def _draw(name: str, results: dict[str, Any], view: LatentView, picked: Any, keys: session.WidgetKeys) -> None:
    if name == "projection":
        start = picked.ref.sample if picked.ready and not picked.ref.upload else None
        scatter(results, view.model, [view.other] + ([] if start is None else [start]), keys, (start, view.other))
    elif name == "grid":
        grid_panel(results["grid"], view.model, _grid_note(view.model, results["grid"].dims))
    elif name == "interpolation":
        interpolation_panel(results["interpolation"], picked.label, view.other)
    elif name == "statistics":
        statistics_panel(results["statistics"])
    else:
        traversal_panel(results["traversal"], results.get("statistics"))


def _grid_note(model: str, dims: Any) -> str:
    if latent_dim(model) <= 2 or tuple(int(d) for d in dims) != most_active_dims(model):
        return ""
    return " These are the two dimensions with the most KL (see KL and active units)."


# --------------------------------------------------------------------------- downloads


def table(results: dict[str, Any]) -> pd.DataFrame | None:
    """The scatter as a table (index, x, y, label, mu_0..): what the CSV download holds."""
    proj = results.get("projection")
    if proj is None:
        return None
    frame = scatter_frame(proj.coords, proj.labels)
    return pd.concat([frame, pd.DataFrame(proj.mu, columns=[f"mu_{k}" for k in range(proj.mu.shape[1])])], axis=1)
