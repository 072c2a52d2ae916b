"""Altair charts built from results and arrays (never from models), and download buttons.

Builders (pure, no Streamlit): :func:`image_chart`, :func:`attribution_chart`,
:func:`scores_chart`, :func:`curves_chart`, :func:`heatmap_chart`, :func:`bar_chart`.
Every chart has tooltips. :func:`symmetric_max` gives one colour scale for several
attributions so that columns compare honestly.

Showing (Streamlit): :func:`show` draws a chart with a "Save" menu (SVG/PNG when
vl-convert is installed, the Vega-Lite spec always, the data as CSV); Streamlit's own chart
toolbar also offers "Download as PNG". :func:`download_buttons` offers a result as
JSON / CSV / NPY / NPZ.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import altair as alt
import numpy as np
import pandas as pd
from altair.utils.schemapi import debug_mode

IMAGE_SIZE = 260  # px, side of an image chart
# Plot areas keep the size asked for; titles and legends are added around them. (Streamlit's
# default, autosize "fit", squeezes the plot to make room for them, which distorts images.)
PAD = alt.AutoSizeParams(type="pad", contains="padding")
DIVERGING = "redblue"  # reversed below: positive = red, negative = blue
# Cell charts (784+ rects) draw on a canvas: one element instead of thousands of SVG nodes, so the
# browser paints them several times faster. Tooltips work the same; SVG/PNG export is unaffected
# (vl-convert on the server, and vega's own "Save as SVG" renders the spec again as SVG).
CANVAS = {"embedOptions": {"renderer": "canvas"}}


F = TypeVar("F", bound=Callable)


def built_fast(builder: F) -> F:
    """Build without Altair's validation of every intermediate object (its "debug mode").

    Skipping the per-object checks makes building the larger charts several times faster; the
    finished charts are validated against the schema by the tests and on every export.
    """
    @functools.wraps(builder)
    def build(*args, **kwargs):
        with debug_mode(False):
            return builder(*args, **kwargs)
    return build  # type: ignore[return-value]


# --------------------------------------------------------------------------- data frames


def grid_frame(values: np.ndarray, name: str = "value") -> pd.DataFrame:
    """A (H, W) array as long rows (row, col, value) for rect charts."""
    a = np.asarray(values, dtype=np.float64)  # (H, W)
    rows, cols = np.indices(a.shape)
    return pd.DataFrame({"row": rows.ravel(), "col": cols.ravel(), name: a.ravel()})


def symmetric_max(arrays: Sequence[np.ndarray], floor: float = 1e-12) -> float:
    """The largest |value| over all arrays: one symmetric colour scale [-m, m] for all of them."""
    finite = [np.abs(a[np.isfinite(a)]).max() for a in map(np.asarray, arrays) if np.isfinite(a).any()]
    return float(max([floor, *finite]))


def _axes(shape: tuple[int, ...], overlap: bool = True) -> dict[str, Any]:
    """Cell-exact x/y encodings (quantitative with x2/y2), row 0 at the top, no axes.

    Opaque layers overlap each cell a little into the next (``overlap``) so that no
    anti-aliasing seams show between cells; translucent layers keep exact cells.
    """
    height, width = shape[:2]
    end = "+ 1.08" if overlap else "+ 1"
    return {
        "x": alt.X("col:Q", axis=None, scale=alt.Scale(domain=[0, width], nice=False, zero=False)),
        "x2": alt.X2("x_end:Q"),
        "y": alt.Y("row:Q", axis=None, scale=alt.Scale(domain=[0, height], nice=False, zero=False, reverse=True)),
        "y2": alt.Y2("y_end:Q"),
    } | {"_end": end}


def cells(chart: alt.Chart, shape: tuple[int, ...], overlap: bool = True) -> alt.Chart:
    """Encode a rect chart on the cell grid of an array of ``shape``."""
    enc = _axes(shape, overlap)
    end = enc.pop("_end")
    return chart.transform_calculate(x_end=f"datum.col {end}", y_end=f"datum.row {end}").encode(**enc)


def grey_uri(pixels: np.ndarray, top: float = 1.0) -> str:
    """A grey image (H, W) in [0, 1] as a PNG data URI: 0 is black, 1 is grey level ``top`` (1.0: white)."""
    import base64

    from PIL import Image

    grey = (np.clip(np.asarray(pixels, dtype=np.float64), 0, 1) * top * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def picture_layer(pixels: np.ndarray, width: int, height: int, top: float) -> alt.Chart:
    """A digit under a heat map, drawn as one picture with crisp pixels (not a rect per pixel).

    One image mark instead of hundreds of cells: the browser redraws the chart in about half
    the time, and nothing about the digit needs a tooltip of its own (the cells above carry the
    pixel value).
    """
    return alt.Chart(pd.DataFrame({"url": [grey_uri(pixels, top)]})).mark_image(
        x=0, y=0, width=width, height=height, align="left", baseline="top", aspect=False, smooth=False,
    ).encode(url="url:N")


# --------------------------------------------------------------------------- builders


@built_fast
def image_chart(pixels: np.ndarray, title: str = "Input", size: int = IMAGE_SIZE) -> alt.Chart:
    """A grayscale image (H, W) in [0, 1] as a heatmap: white strokes on black, like MNIST."""
    df = grid_frame(pixels, "pixel")
    return cells(alt.Chart(df, title=title).mark_rect(), np.shape(pixels)).encode(
        color=alt.Color("pixel:Q", scale=alt.Scale(domain=[0, 1], range=["black", "white"]), legend=None),
        tooltip=[alt.Tooltip("row:O"), alt.Tooltip("col:O"), alt.Tooltip("pixel:Q", format=".3f")],
    ).properties(width=size, height=size, autosize=PAD, usermeta=CANVAS)


# Dataset names of the attribution chart. Its data lives in these named datasets and its colour
# range is read from the data (the ``vmax`` column), so the charts of two maps differ in their data
# only: Streamlit then updates a drawn chart in place instead of building a new Vega view.
ATTRIBUTION_PICTURE = "attribution-picture"
ATTRIBUTION_CELLS = "attribution-cells"
_VMAX = f"data('{ATTRIBUTION_CELLS}')[0].vmax"
_PICTURE_TOP = 0x9a / 255  # the digit's brightest grey under the attribution


def attribution_frame(pixels: np.ndarray, attribution: np.ndarray, vmax: float | None = None) -> pd.DataFrame:
    """The attribution chart's cells: row, col, pixel, attribution, magnitude and the colour range ``vmax``."""
    vmax = float(vmax) if vmax else symmetric_max([attribution])
    df = grid_frame(pixels, "pixel")
    df["attribution"] = np.asarray(attribution, dtype=np.float64).ravel()
    df["magnitude"] = df["attribution"].abs()
    df["vmax"] = vmax
    return df


@built_fast
def attribution_chart(pixels: np.ndarray, attribution: np.ndarray, vmax: float | None = None,
                      title: str = "Attribution", size: int = IMAGE_SIZE) -> alt.LayerChart:
    """A signed attribution (H, W) over the input (H, W): red positive, blue negative, centred at 0.

    The colour scale runs over [-vmax, vmax] (default: the map's own largest |value|); pass
    the same ``vmax`` to several charts (see :func:`symmetric_max`) to compare them honestly.
    Opacity grows with |attribution|, so the digit shows through where attribution is small.
    """
    chart = _attribution_layout(title, size, tuple(np.shape(pixels))).copy(deep=False)
    # set, not .properties(): that would check every record against the schema
    chart.datasets = {name: frame.to_dict("records") for name, frame in
                      _attribution_datasets(pixels, attribution, vmax).items()}
    return chart


def attribution_spec(pixels: np.ndarray, attribution: np.ndarray, vmax: float | None = None,
                     title: str = "Attribution", size: int = IMAGE_SIZE) -> dict[str, Any] | None:
    """What ``st.vega_lite_chart`` draws for :func:`attribution_chart` with the same arguments, in about
    5 ms instead of 20: the layout is converted once per title, size and shape, and only the data is
    new (as Arrow). None when this Streamlit has no converter (draw the chart instead)."""
    import copy

    layout = _attribution_layout_spec(title, size, tuple(np.shape(pixels)))
    if layout is None:
        return None
    from streamlit import dataframe_util

    spec = copy.deepcopy(layout)
    spec["datasets"] = {name: dataframe_util.convert_anything_to_arrow_bytes(frame) for name, frame in
                        _attribution_datasets(pixels, attribution, vmax).items()}
    return spec


def _attribution_datasets(pixels: np.ndarray, attribution: np.ndarray, vmax: float | None) -> dict[str, pd.DataFrame]:
    return {ATTRIBUTION_PICTURE: pd.DataFrame({"url": [grey_uri(pixels, _PICTURE_TOP)]}),
            ATTRIBUTION_CELLS: attribution_frame(pixels, attribution, vmax)}


@functools.lru_cache(maxsize=32)
def _attribution_layout_spec(title: str, size: int, shape: tuple[int, ...]) -> dict[str, Any] | None:
    return vega_spec(_attribution_layout(title, size, shape))


@functools.lru_cache(maxsize=32)
@built_fast
def _attribution_layout(title: str, size: int, shape: tuple[int, ...]) -> alt.LayerChart:
    """The attribution chart without data: a picture layer and a cell layer over named datasets."""
    under = alt.Chart(alt.NamedData(ATTRIBUTION_PICTURE)).mark_image(
        x=0, y=0, width=size, height=size, align="left", baseline="top", aspect=False, smooth=False,
    ).encode(url="url:N")
    vmax = alt.param(name="vmax", expr=_VMAX)
    over = cells(alt.Chart(alt.NamedData(ATTRIBUTION_CELLS), title=title).mark_rect(), shape, overlap=False).encode(
        color=alt.Color("attribution:Q", title="attribution",
                        scale=alt.Scale(scheme=DIVERGING, reverse=True, domain=alt.ExprRef("[-vmax, vmax]"),
                                        domainMid=0, clamp=True),
                        legend=alt.Legend(orient="bottom", gradientLength=size - 20, format=".2g")),
        opacity=alt.Opacity("magnitude:Q", scale=alt.Scale(domain=alt.ExprRef("[0, vmax]"), range=[0.0, 0.95],
                                                           clamp=True), legend=None),
        tooltip=[alt.Tooltip("row:O"), alt.Tooltip("col:O"), alt.Tooltip("pixel:Q", format=".3f"),
                 alt.Tooltip("attribution:Q", format=".4g")],
    )
    return alt.layer(under, over).add_params(vmax).properties(width=size, height=size, autosize=PAD,
                                                              usermeta=CANVAS)


@built_fast
def heatmap_chart(values: np.ndarray, title: str = "", scheme: str = "viridis", size: int = IMAGE_SIZE,
                  domain: tuple[float, float] | None = None, value_name: str = "value") -> alt.Chart:
    """Any (H, W) array as a heatmap with a colour legend and tooltips (row, col, value)."""
    df = grid_frame(values, value_name)
    scale = alt.Scale(scheme=scheme, domain=list(domain)) if domain else alt.Scale(scheme=scheme)
    return cells(alt.Chart(df, title=title).mark_rect(), np.shape(values)).encode(
        color=alt.Color(f"{value_name}:Q", scale=scale, legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip("row:O"), alt.Tooltip("col:O"), alt.Tooltip(f"{value_name}:Q", format=".4g")],
    ).properties(width=size, height=size, autosize=PAD, usermeta=CANVAS)


@built_fast
def bar_chart(labels: Sequence[str], values: Sequence[float], title: str = "", value_name: str = "value",
              highlight: int | None = None, width: int = 260, height: int = 220) -> alt.Chart:
    """Vertical bars, one per label, with the ``highlight`` bar in a stronger colour."""
    df = pd.DataFrame({"label": [str(v) for v in labels], value_name: np.asarray(values, dtype=np.float64)})
    df["chosen"] = [i == highlight for i in range(len(df))]
    return alt.Chart(df, title=title).mark_bar().encode(
        x=alt.X("label:N", sort=None, title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{value_name}:Q", title=value_name),
        color=alt.condition("datum.chosen", alt.value("#d62728"), alt.value("#8fa8c8")),
        tooltip=[alt.Tooltip("label:N"), alt.Tooltip(f"{value_name}:Q", format=".4f")],
    ).properties(width=width, height=height, autosize=PAD)


@built_fast
def scores_chart(labels: Sequence[str], scores: np.ndarray, predicted: int | None = None,
                 value_name: str = "probability") -> alt.Chart:
    """Class scores as bars, the predicted class highlighted."""
    return bar_chart(labels, scores, title="Class scores", value_name=value_name, highlight=predicted)


@built_fast
def curves_chart(fractions: np.ndarray, curves: Mapping[str, np.ndarray], title: str = "",
                 x_title: str = "fraction of pixels", y_title: str = "model output") -> alt.Chart:
    """Lines y(fraction), one per named curve; names starting with "random" are dashed."""
    frames = [pd.DataFrame({"fraction": np.asarray(fractions, dtype=np.float64),
                            "value": np.asarray(v, dtype=np.float64), "curve": name})
              for name, v in curves.items()]
    df = pd.concat(frames, ignore_index=True)
    df["random"] = df["curve"].str.startswith("random")
    return alt.Chart(df, title=title).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("fraction:Q", title=x_title, scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("value:Q", title=y_title),
        color=alt.Color("curve:N", legend=alt.Legend(orient="bottom", title=None)),
        strokeDash=alt.StrokeDash("random:N", legend=None),
        tooltip=[alt.Tooltip("curve:N"), alt.Tooltip("fraction:Q", format=".2f"),
                 alt.Tooltip("value:Q", format=".4g")],
    ).properties(width=240, height=200, autosize=PAD)


# --------------------------------------------------------------------------- showing


def slug(name: str) -> str:
    """A file-name-safe form of ``name``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "chart"


def _vl_convert() -> Any | None:
    try:
        import vl_convert  # optional: renders Vega-Lite to SVG/PNG on the server
    except ImportError:
        return None
    return vl_convert


def chart_json(chart: alt.TopLevelMixin) -> str:
    """The chart's Vega-Lite spec with its data inline, however many rows (Altair's 5,000-row guard lifted)."""
    with alt.data_transformers.disable_max_rows():
        return chart.to_json()


def chart_svg(chart: alt.TopLevelMixin) -> bytes:
    """The chart as SVG, however many rows its data has (needs vl-convert-python)."""
    with alt.data_transformers.disable_max_rows():
        return _vl_convert().vegalite_to_svg(chart.to_dict()).encode()


def chart_png(chart: alt.TopLevelMixin) -> bytes:
    """The chart as PNG at 2x scale, however many rows its data has (needs vl-convert-python)."""
    with alt.data_transformers.disable_max_rows():
        return _vl_convert().vegalite_to_png(chart.to_dict(), scale=2)


def show(chart: alt.TopLevelMixin, name: str, *, data: pd.DataFrame | None = None, key: str = "") -> None:
    """Draw a chart with a "Save" menu: SVG/PNG (with vl-convert), Vega-Lite JSON, data CSV."""
    import streamlit as st

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
    import streamlit as st

    @st.fragment
    def popover(label: str, key: str, fill: Callable[[], None]) -> None:
        with st.popover(label, icon=":material/download:", key=key, on_change="rerun") as menu:
            if menu.open:
                fill()

    return popover


def _save_buttons(chart: alt.TopLevelMixin, name_slug: str, data: pd.DataFrame | None) -> None:
    import streamlit as st

    if _vl_convert() is not None:
        st.download_button("SVG", lambda: chart_svg(chart), f"{name_slug}.svg", "image/svg+xml",
                           key=f"dl.{name_slug}.svg", on_click="ignore")
        st.download_button("PNG", lambda: chart_png(chart), f"{name_slug}.png", "image/png",
                           key=f"dl.{name_slug}.png", on_click="ignore")
    else:
        st.caption("PNG: use the chart's toolbar (top right of the chart).")
    st.download_button("Vega-Lite JSON", lambda: chart_json(chart), f"{name_slug}.vl.json", "application/json",
                       key=f"dl.{name_slug}.vl", on_click="ignore")
    table = data if data is not None else _chart_data(chart)
    if table is not None:
        st.download_button("Data (CSV)", lambda: table.to_csv(index=False), f"{name_slug}.csv", "text/csv",
                           key=f"dl.{name_slug}.csv", on_click="ignore")


@functools.cache
def _built() -> Any:
    """Charts built from cached results, shared by every session; each entry pins the result it was built from."""
    import streamlit as st

    from app import cache

    @st.cache_resource(show_spinner=False)
    def built() -> cache.ResultCache:
        return cache.ResultCache(max_entries=128)

    return built()


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
    import contextlib
    import copy

    import streamlit as st

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


_VIEW_LISTS = ("layer", "hconcat", "vconcat", "concat")  # keys whose lists hold views


def in_place(spec: dict[str, Any], slot: str) -> dict[str, Any]:
    """``spec`` (from :func:`vega_spec`) made so that Streamlit can draw it by updating the chart before it.

    Streamlit builds a new Vega view whenever a chart's spec differs from the one drawn in its place
    and only updates the data when the spec is the same; Altair names every dataset after a hash of
    its data, and titles are text in the spec. Here the datasets are named ``<slot>-0``,
    ``<slot>-1``, ... in order, and each view title is read by a Vega expression from a column of
    its data (``_title0``, ...; one dictionary-coded value): two charts of one layout then differ
    in their data only. (Scale domains written into the spec still differ: such charts leave them
    to the data.)
    """
    import pyarrow as pa
    from streamlit import dataframe_util

    names = {old: f"{slot}-{i}" for i, old in enumerate(spec.get("datasets", {}))}
    titled: list[tuple[dict[str, Any], str | None, str]] = []  # (view, its data or None, title text)

    def view(node: dict[str, Any], inherited: str | None) -> dict[str, Any]:
        out = dict(node)
        data = out.get("data")
        if isinstance(data, dict) and data.get("name") in names:
            out["data"] = {**data, "name": names[data["name"]]}
        own = out["data"]["name"] if isinstance(out.get("data"), dict) and "name" in out["data"] else inherited
        title = out.get("title")
        text = title.get("text") if isinstance(title, dict) else title
        if isinstance(text, str) and text:
            titled.append((out, own, text))
        for key in _VIEW_LISTS:
            if isinstance(out.get(key), list):
                out[key] = [view(v, own) if isinstance(v, dict) else v for v in out[key]]
        if isinstance(out.get("spec"), dict):  # facet and repeat
            out["spec"] = view(out["spec"], own)
        return out

    top = view({k: v for k, v in spec.items() if k != "datasets"}, None)
    datasets = {names[old]: data for old, data in spec.get("datasets", {}).items()}
    columns: dict[str, dict[str, str]] = {}
    for i, (node, data_name, text) in enumerate(titled):
        data_name = data_name or next(iter(datasets), None)
        if data_name is None or not isinstance(datasets[data_name], bytes):
            continue  # nothing to carry the title: it stays text
        columns.setdefault(data_name, {})[f"_title{i}"] = text
        title = node["title"]
        expr = {"expr": f"data('{data_name}')[0]._title{i}"}
        node["title"] = {**title, "text": expr} if isinstance(title, dict) else {"text": expr}
    for data_name, extra in columns.items():
        frame = pa.ipc.open_stream(datasets[data_name]).read_pandas()
        for column, text in extra.items():
            frame[column] = pd.Categorical([text] * len(frame))
        datasets[data_name] = dataframe_util.convert_anything_to_arrow_bytes(frame)
    return {**top, "datasets": datasets}


def _with_spec(built: Built, slot: str | None = None) -> tuple[alt.TopLevelMixin, pd.DataFrame | None,
                                                                 dict[str, Any] | None]:
    chart, data = built if isinstance(built, tuple) else (built, None)
    spec = vega_spec(chart)
    return chart, data, in_place(spec, slot) if spec is not None and slot else spec


def vega_spec(chart: alt.TopLevelMixin) -> dict[str, Any] | None:
    """The chart as the Vega-Lite spec ``st.altair_chart`` sends (data as Arrow), or None.

    Uses Streamlit's own converter, so the spec is what ``st.altair_chart`` would send, except
    that the finished spec is not checked against the Vega-Lite JSON schema again: that check
    costs more than building the chart, and every builder's output is validated by the tests.
    Cell charts draw on one canvas instead of thousands of SVG nodes. None when this Streamlit
    has no such converter (then charts are drawn the ordinary way).
    """
    import functools as ft

    from streamlit.elements import vega_charts

    convert = getattr(vega_charts, "_convert_altair_to_vega_lite_spec", None)
    if convert is None:
        return None
    # Streamlit calls ``chart.to_dict()``; for this one conversion that means to_dict(validate=False).
    vars(chart)["to_dict"] = ft.partial(type(chart).to_dict, chart, validate=False)
    try:
        spec = convert(chart)
    except Exception:  # noqa: BLE001 - a changed private API only costs speed: draw the ordinary way
        return None
    finally:
        vars(chart).pop("to_dict", None)
    spec.setdefault("usermeta", {}).setdefault("embedOptions", {}).setdefault("renderer", "canvas")
    return spec


def _chart_data(chart: alt.TopLevelMixin) -> pd.DataFrame | None:
    """The chart's table for the CSV download: its own data, else its largest layer's or named dataset's
    (not a picture's)."""
    data = getattr(chart, "data", None)
    if isinstance(data, pd.DataFrame):
        return data
    frames = [layer.data for layer in getattr(chart, "layer", []) or [] if isinstance(getattr(layer, "data", None), pd.DataFrame)]
    named = getattr(chart, "datasets", None)
    if isinstance(named, dict):
        frames += [pd.DataFrame.from_records(rows) for rows in named.values() if isinstance(rows, list) and len(rows) > 1]
    return max(frames, key=len) if frames else None


def npy_bytes(array: np.ndarray) -> bytes:
    """One array as .npy bytes (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Several arrays as .npz bytes (names with "/" become "__")."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k.replace("/", "__"): np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def download_buttons(name: str, *, record: Mapping[str, Any] | None = None,
                     arrays: Mapping[str, np.ndarray] | None = None, main_array: str | None = None,
                     table: pd.DataFrame | None = None, key: str = "") -> None:
    """Download buttons in one "Download results" popover: JSON (metadata), CSV (a table), NPY (the main
    array), NPZ (all)."""
    name_slug = slug(key or name)
    lazy_popover("Download results", f"downloads.{name_slug}",
                 lambda: _download_buttons(name_slug, record, arrays, main_array, table))


def _download_buttons(name_slug: str, record: Mapping[str, Any] | None, arrays: Mapping[str, np.ndarray] | None,
                      main_array: str | None, table: pd.DataFrame | None) -> None:
    import streamlit as st

    icon = ":material/download:"
    if record is not None:
        st.download_button("JSON", lambda: json.dumps(record, indent=2, default=_json_default),
                           f"{name_slug}.json", "application/json", key=f"dl.{name_slug}.json", on_click="ignore",
                           icon=icon)
    if table is not None:
        st.download_button("CSV", lambda: table.to_csv(index=False), f"{name_slug}.csv", "text/csv",
                           key=f"dl.{name_slug}.table", on_click="ignore", icon=icon)
    if arrays and main_array in arrays:
        st.download_button("NPY", lambda: npy_bytes(arrays[main_array]),
                           f"{name_slug}-{main_array.replace('/', '-')}.npy", "application/octet-stream",
                           key=f"dl.{name_slug}.npy", on_click="ignore", icon=icon)
    if arrays:
        st.download_button("NPZ (all arrays)", lambda: npz_bytes(arrays), f"{name_slug}.npz",
                           "application/octet-stream", key=f"dl.{name_slug}.npz", on_click="ignore", icon=icon)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
