"""Render pieces shared by the exploration pages (Attention, Synthesizers, Latent space, Capsules).

Composes the framework's helpers (``app.views``, ``app.charts``, ``app.compute``) and adds
what these pages need on top: charts that return their selection, a save menu that copes with
large charts, image mosaics with a PNG download, index pickers checked against a model's own
sizes, and results that come either from a saved link or from the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from app import cache, charts, messages, session, views
from app import explore_charts as ec


# --------------------------------------------------------------------------- charts


# One Save menu and one way to draw a chart built from a result, for every page.
chart_json, chart_png, chart_svg, save_menu = charts.chart_json, charts.chart_png, charts.chart_svg, charts.save_menu
built_once, show_built = charts.built_once, charts.show_built


def show(chart: alt.TopLevelMixin, name: str, *, key: str, data: pd.DataFrame | None = None) -> None:
    """Draw a chart with its Save menu."""
    st.altair_chart(chart, width="content")
    save_menu(chart, name, key=key, data=data)


def picture(image: np.ndarray, caption: str, *, key: str, width: int | None = None) -> None:
    """A uint8 picture (a mosaic of digits) with a PNG download."""
    st.image(image, caption=caption, width=width or int(image.shape[1]), output_format="PNG")
    slug = charts.slug(key)
    st.download_button("PNG", lambda: ec.png_bytes(image), f"{slug}.png", "image/png", key=f"dl.{slug}.picture",
                       on_click="ignore", icon=":material/download:")


def digit(pixels: np.ndarray, caption: str, scale: int = 4) -> None:
    """One (28, 28) digit, enlarged with crisp pixels."""
    st.image(ec.mosaic(np.asarray(pixels)[None, None], pad=0, scale=scale), caption=caption, output_format="PNG")


# --------------------------------------------------------------------------- widgets


def model_picker(keys: session.WidgetKeys, models: Sequence[str], seed: str, label: str = "Model",
                 host: Any = st) -> str:
    """A select box over ``models``, seeded from the view."""
    return host.selectbox(label, list(models), key=keys.key("model", seed, list(models)),
                          format_func=views.model_label)


def index_picker(keys: session.WidgetKeys, name: str, label: str, seed: int, count: int, *, opened: bool,
                 host: Any = st, first: int = 0) -> int:
    """Choose an index below ``count`` (shown from ``first``); a link's index that does not exist is reported."""
    options = list(range(count))
    if opened and seed not in options:
        messages.error(f"This model has no {label} {seed + first} (it has {first} to {count - 1 + first}); "
                       f"showing {label} {first}.")
    return host.selectbox(label.capitalize(), options, key=keys.key(name, seed, options),
                          format_func=lambda i: str(i + first))


def heldout_picker(keys: session.WidgetKeys, seed: int, label: str, host: Any = st) -> int:
    """A held-out digit chosen by class, then example (for a second input, beside ``views.input_picker``)."""
    y = cache.heldout_split().y_heldout
    classes = list(range(10))
    cls = host.selectbox(f"{label}: digit class", classes, key=keys.key("other.digit", int(y[seed]), classes))
    indices = [int(i) for i in np.flatnonzero(y == cls)]
    return host.select_slider(f"{label}: example", indices, key=keys.key("other.sample", seed, indices),
                              format_func=lambda i: f"#{i}")


def number_field(keys: session.WidgetKeys, part: str, name: str, current: Any, host: Any = st) -> Any:
    """A number input for one params field, within its bounds, seeded from ``current``."""
    from analyzers import field_specs

    spec = next(s for s in field_specs(type(current)) if s.name == name)
    key = keys.key(f"{part}.{name}", getattr(current, name))
    if spec.type is int:
        host.number_input(name, min_value=spec.min, max_value=spec.max, step=1, key=key, help=spec.help)
    else:
        host.number_input(name, min_value=float(spec.min), max_value=float(spec.max),
                          step=float(spec.max - spec.min) / 100, format="%g", key=key, help=spec.help)
    return st.session_state[key]


def build_params(cls: type, values: dict[str, Any], fallback: Any) -> Any:
    """``cls(**values)``, or ``fallback`` after saying why the values do not fit together."""
    from analyzers import ParamError

    try:
        return cls(**values)
    except (ParamError, TypeError) as e:
        messages.error(f"These settings do not fit together: {e}")
        return fallback


# --------------------------------------------------------------------------- results


def saved_view(link: str | None) -> Any | None:
    """The saved analysis behind ``link`` (``app.share.SavedView``) with its provenance shown, or None."""
    saved = views.saved_results(link)
    if saved is not None:
        views.provenance(saved)
    return saved


def results_for(link: str | None, compute: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """The saved results behind ``link`` (with their provenance), or ``compute()`` when there is none."""
    saved = saved_view(link)
    return dict(saved.results) if saved is not None else compute()


def attempt(description: str, work: Callable[[], Any]) -> tuple[Any | None, str | None]:
    """``work()`` as :func:`views.with_spinner` runs it: (result, None), or (None, the reason it could not run)."""
    from app.compute import AnalysisError

    try:
        return views.with_spinner(description, work), None
    except AnalysisError as e:
        return None, str(e)


def downloads(name: str, results: Mapping[str, Any], *, main: str, table: pd.DataFrame | None, key: str) -> None:
    """Download every result: JSON (summaries and metadata), CSV (``table``), NPY (``main`` array), NPZ (all)."""
    views.downloads(name, results, key, main=main, table=table)


def heldout_probe_set(per_class: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_class`` held-out digits of every class: indices (N,) and pixels (N, 28, 28)."""
    y = cache.heldout_split().y_heldout
    idx = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    pixels = np.stack([cache.sample_pixels(int(i)) for i in idx])  # (N, 28, 28)
    return idx, pixels
