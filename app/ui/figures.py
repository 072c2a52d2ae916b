"""Figures on the page: a chart with its Save menu, charts built once per result, pictures, download menus.

Every chart a page draws goes through :func:`show` or :func:`show_built`, so each has the same
Save menu (SVG/PNG with vl-convert, the Vega-Lite spec, the data as CSV), made only when opened.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from app.charts.export import (
    chart_data, chart_json, chart_png, chart_svg, npy_bytes, npz_bytes, record_json, slug, vl_convert,
)
from app.charts.images import mosaic, png_bytes
from app.runtime.memo import once_per_process
from app.runtime.results import ResultCache
from app.ui.vega import in_place, vega_spec


# --------------------------------------------------------------------------- charts


def show(chart: alt.TopLevelMixin, name: str, *, data: pd.DataFrame | None = None, key: str = "") -> None:
    """Draw a chart with a "Save" menu: SVG/PNG (with vl-convert), Vega-Lite JSON, data CSV."""
    st.altair_chart(chart, width="content")
    save_menu(chart, name, data=data, key=key)


def save_menu(chart: alt.TopLevelMixin | Callable[[], Built], name: str, *, data: pd.DataFrame | None = None,
              key: str = "") -> None:
    """The chart's "Save" popover: SVG/PNG (with vl-convert), Vega-Lite JSON, data CSV (each made on click).

    The menu is drawn empty and fills in when it is opened, in a fragment of its own: opening it
    reruns only the menu, and every other run of the page sends one button instead of five.
    ``chart`` may be a function that builds it (and optionally its CSV table): it is called only
    when the menu is opened.
    """
    name_slug = slug(key or name)

    def fill() -> None:
        built = chart() if callable(chart) and not isinstance(chart, alt.TopLevelMixin) else chart
        shown, table = built if isinstance(built, tuple) else (built, data)
        _save_buttons(shown, name_slug, table)

    lazy_popover("Save", f"save.{name_slug}", fill)


def lazy_popover(label: str, key: str, fill: Callable[[], None]) -> None:
    """A download popover whose contents ``fill()`` draws only while it is open.

    It lives in a fragment of its own: opening it reruns only the popover, and every other run
    of the page sends one button instead of the whole menu.
    """
    _lazy_fragment()(label, key, fill)


@functools.cache
def _lazy_fragment() -> Callable[..., None]:
    @st.fragment
    def popover(label: str, key: str, fill: Callable[[], None]) -> None:
        with st.popover(label, icon=":material/download:", key=key, on_change="rerun") as menu:
            if menu.open:
                fill()

    return popover


def _save_buttons(chart: alt.TopLevelMixin, name_slug: str, data: pd.DataFrame | None) -> None:
    if vl_convert() is not None:
        st.download_button("SVG", lambda: chart_svg(chart), f"{name_slug}.svg", "image/svg+xml",
                           key=f"dl.{name_slug}.svg", on_click="ignore")
        st.download_button("PNG", lambda: chart_png(chart), f"{name_slug}.png", "image/png",
                           key=f"dl.{name_slug}.png", on_click="ignore")
    else:
        st.caption("PNG: use the chart's toolbar (top right of the chart).")
    st.download_button("Vega-Lite JSON", lambda: chart_json(chart), f"{name_slug}.vl.json", "application/json",
                       key=f"dl.{name_slug}.vl", on_click="ignore")
    table = data if data is not None else chart_data(chart)
    if table is not None:
        st.download_button("Data (CSV)", lambda: table.to_csv(index=False), f"{name_slug}.csv", "text/csv",
                           key=f"dl.{name_slug}.csv", on_click="ignore")


@once_per_process()
def _built() -> ResultCache:
    """Charts built from cached results, shared by every session; each entry pins the result it was built from."""
    return ResultCache(max_entries=128)


def built_once(owner: Any, key: str, build: Callable[[], Any]) -> Any:
    """``build()`` for the result object ``owner`` (or a tuple of them) and ``key``, reused while shown again.

    Results are cached and immutable, so a chart built from them never changes. The entry holds
    the owners themselves, so an object id in the cache key cannot pass to another result.
    """
    owners = owner if isinstance(owner, tuple) else (owner,)
    full = ",".join(str(id(o)) for o in owners) + f":{key}"
    hit = _built().get(full)
    if hit is not None and len(hit[0]) == len(owners) and all(a is b for a, b in zip(hit[0], owners)):
        return hit[1]
    value = build()
    _built().put(full, (owners, value))
    return value


Built = alt.TopLevelMixin | tuple[alt.TopLevelMixin, pd.DataFrame | None]  # a chart, or one and its CSV table


def show_built(owner: Any, key: str, name: str, build: Callable[[], Built], *, variant: str = "",
               select: str | None = None, spec: Callable[[], dict[str, Any] | None] | None = None,
               slot: str | None = None, menu: Any = None) -> Any:
    """Draw the chart ``build()`` makes from result ``owner`` (optionally with its CSV table), with a Save menu.

    The chart and its Vega-Lite spec are made once per result (:func:`built_once`); later runs
    send that spec as it is, without building, validating and converting the chart again. With
    ``select`` (a widget key), selections in the chart rerun the app and the selection is
    returned (one entry per selection parameter); otherwise None. ``key`` names the chart's
    files and widgets; ``variant`` names whatever else the chart depends on (a shared colour
    scale, a title). ``spec`` (optional) makes what ``st.vega_lite_chart`` draws without building
    the chart (e.g. :func:`attribution_spec`); the chart is then built when its Save menu opens.
    ``slot`` (optional) names the place on the page that charts of one layout take turns in (the
    chosen head's map, whatever the head): they are drawn with :func:`in_place`, so the next one
    updates the chart already drawn there. ``menu`` (optional) is the container the Save menu
    goes in, e.g. a row below charts of different heights side by side, so their menus line up.
    """
    events = {"on_select": "rerun", "key": f"chart.{select}"} if select else {}
    if spec is not None and (drawn := built_once(owner, f"{key}:{variant}:spec", spec)) is not None:
        if slot:
            drawn = built_once(owner, f"{key}:{variant}:spec:{slot}", lambda: in_place(drawn, slot))
        event = st.vega_lite_chart(copy.deepcopy(drawn), width="content", **events)
        with menu if menu is not None else contextlib.nullcontext():
            save_menu(lambda: built_once(owner, f"{key}:{variant}:chart", build), name, key=key)
        return event.selection if select else None
    chart, data, spec_of_chart = built_once(owner, f"{key}:{variant}", lambda: _with_spec(build(), slot))
    if spec_of_chart is None:
        event = st.altair_chart(chart, width="content", **events)
    else:
        event = st.vega_lite_chart(copy.deepcopy(spec_of_chart), width="content", **events)
    with menu if menu is not None else contextlib.nullcontext():
        save_menu(chart, name, key=key, data=data)
    return event.selection if select else None


def _with_spec(built: Built, slot: str | None = None) -> tuple[alt.TopLevelMixin, pd.DataFrame | None,
                                                               dict[str, Any] | None]:
    chart, data = built if isinstance(built, tuple) else (built, None)
    spec = vega_spec(chart)
    return chart, data, in_place(spec, slot) if spec is not None and slot else spec


# --------------------------------------------------------------------------- pictures


def picture(image: np.ndarray, caption: str, *, key: str, width: int | None = None) -> None:
    """A uint8 picture (a mosaic of digits) with a PNG download."""
    st.image(image, caption=caption, width=width or int(image.shape[1]), output_format="PNG")
    name = slug(key)
    st.download_button("PNG", lambda: png_bytes(image), f"{name}.png", "image/png", key=f"dl.{name}.picture",
                       on_click="ignore", icon=":material/download:")


def digit(pixels: np.ndarray, caption: str, scale: int = 4) -> None:
    """One (28, 28) digit, enlarged with crisp pixels."""
    st.image(mosaic(np.asarray(pixels)[None, None], pad=0, scale=scale), caption=caption, output_format="PNG")


# --------------------------------------------------------------------------- downloads


def download_buttons(name: str, *, record: Mapping[str, Any] | None = None,
                     arrays: Mapping[str, np.ndarray] | None = None, main_array: str | None = None,
                     table: pd.DataFrame | None = None, key: str = "") -> None:
    """Download buttons in one "Download results" popover: JSON (metadata), CSV (a table), NPY (the main
    array), NPZ (all, with the JSON metadata inside). Files are named after ``name`` plus "-results", so they
    never share a name with a chart's own downloads; ``key`` keeps the widgets apart."""
    files, widgets = results_file(name), slug(key or name)
    lazy_popover("Download results", f"downloads.{widgets}",
                 lambda: _download_buttons(files, widgets, record, arrays, main_array, table))


def results_file(name: str) -> str:
    """The base name of a result's downloads ("vit-dot-saliency-results"): never a chart's ("attribution")."""
    return f"{slug(name)}-results"


def _download_buttons(files: str, widgets: str, record: Mapping[str, Any] | None,
                      arrays: Mapping[str, np.ndarray] | None, main_array: str | None, table: pd.DataFrame | None) -> None:
    icon = ":material/download:"
    if record is not None:
        st.download_button("JSON", lambda: record_json(record), f"{files}.json", "application/json",
                           key=f"dl.{widgets}.json", on_click="ignore", icon=icon)
    if table is not None:
        st.download_button("CSV", lambda: table.to_csv(index=False), f"{files}.csv", "text/csv",
                           key=f"dl.{widgets}.table", on_click="ignore", icon=icon)
    if arrays and main_array in arrays:
        st.download_button("NPY", lambda: npy_bytes(arrays[main_array]),
                           f"{files}-{main_array.replace('/', '-')}.npy", "application/octet-stream",
                           key=f"dl.{widgets}.npy", on_click="ignore", icon=icon)
    if arrays:
        st.download_button("NPZ (all arrays)", lambda: npz_bytes(arrays, record), f"{files}.npz",
                           "application/octet-stream", key=f"dl.{widgets}.npz", on_click="ignore", icon=icon)
