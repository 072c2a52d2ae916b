"""Altair builders every kind of figure shares: pixel grids, images, heatmaps, bars, curves.

Pure functions (no Streamlit, no models): arrays in, Altair charts out. Every chart has
tooltips. :func:`symmetric_max` gives one colour scale for several maps so they compare honestly.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import altair as alt
import numpy as np
import pandas as pd
from altair.utils.schemapi import debug_mode
from PIL import Image

IMAGE_SIZE = 260  # px, side of an image chart

# Plot areas keep the size asked for; titles and legends are added around them. (Streamlit's
# default, autosize "fit", squeezes the plot to make room for them, which distorts images.)
PAD = alt.AutoSizeParams(type="pad", contains="padding")

DIVERGING = "redblue"  # signed values, reversed: positive = red, negative = blue
SEQUENTIAL = "viridis"  # attention weights, routing coefficients: 0 .. max

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


# --------------------------------------------------------------------------- charts


@built_fast
def image_chart(pixels: np.ndarray, title: str = "Input", size: int = IMAGE_SIZE) -> alt.Chart:
    """A grayscale image (H, W) in [0, 1] as a heatmap: white strokes on black, like MNIST."""
    df = grid_frame(pixels, "pixel")
    return cells(alt.Chart(df, title=title).mark_rect(), np.shape(pixels)).encode(
        color=alt.Color("pixel:Q", scale=alt.Scale(domain=[0, 1], range=["black", "white"]), legend=None),
        tooltip=[alt.Tooltip("row:O"), alt.Tooltip("col:O"), alt.Tooltip("pixel:Q", format=".3f")],
    ).properties(width=size, height=size, autosize=PAD, usermeta=CANVAS)


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
                 value_name: str = "probability", explained: int | None = None) -> alt.Chart:
    """Class scores as bars: the predicted class in red, the explained one (when another) in orange.

    The chart has one shape whatever the classes, so another target changes only its data (and a drawn
    chart can be updated in place).
    """
    roles = ["predicted" if i == predicted else "explained" if i == explained else "" for i in range(len(labels))]
    df = pd.DataFrame({"label": [str(v) for v in labels], value_name: np.asarray(scores, dtype=np.float64),
                       "role": roles})
    return alt.Chart(df, title="Class scores").mark_bar().encode(
        x=alt.X("label:N", sort=None, title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{value_name}:Q", title=value_name),
        color=alt.Color("role:N", title=None, scale=alt.Scale(domain=["predicted", "explained", ""],
                                                              range=["#d62728", "#ff7f0e", "#8fa8c8"]),
                        legend=alt.Legend(orient="bottom", values=["predicted", "explained"])),
        tooltip=[alt.Tooltip("label:N"), alt.Tooltip("role:N"), alt.Tooltip(f"{value_name}:Q", format=".4f")],
    ).properties(width=260, height=220, autosize=PAD)


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


@built_fast
def confusion_chart(counts: np.ndarray, labels: Sequence[str], title: str = "", cell: int = 26) -> alt.LayerChart:
    """A confusion matrix (row = true class, column = predicted), counts written in the cells."""
    k = len(labels)
    rows, cols = np.indices((k, k))
    df = pd.DataFrame({"true": [labels[i] for i in rows.ravel()], "predicted": [labels[j] for j in cols.ravel()],
                       "count": np.asarray(counts).ravel(), "diagonal": (rows == cols).ravel()})
    base = alt.Chart(df, title=title).encode(
        x=alt.X("predicted:O", sort=list(labels), title="predicted class"),
        y=alt.Y("true:O", sort=list(labels), title="true class"),
        tooltip=[alt.Tooltip("true:O"), alt.Tooltip("predicted:O"), alt.Tooltip("count:Q")])
    # Empty cells stay white and the diagonal pale blue; only confusions (off-diagonal, count > 0) are red,
    # on a scale that starts at one confusion (a scale over the zeros too painted every empty cell).
    cells = base.mark_rect(stroke="#f3f3f3").encode(
        color=alt.condition(alt.datum.diagonal, alt.value("#e8eef7"), alt.value("#ffffff")))
    most = int(max(1, np.max(np.where(rows != cols, np.asarray(counts), 0), initial=0)))
    errors = base.transform_filter("!datum.diagonal && datum.count > 0").mark_rect().encode(
        color=alt.Color("count:Q", scale=alt.Scale(scheme="reds", type="symlog", domain=[0, most]), legend=None))
    text = base.mark_text(fontSize=10).encode(text=alt.condition(alt.datum.count > 0, "count:Q", alt.value("")))
    return alt.layer(cells, errors, text).properties(width=cell * k, height=cell * k, autosize=PAD)


def token_boxes(df: pd.DataFrame, title: str, vmax: float, per_line: float, char_px: float, text: str,
                tooltip: list) -> alt.LayerChart:
    """Tokens or words laid out in lines as coloured boxes (signed scale centred at 0) with their text drawn by
    Vega as plain text; ``df`` has x, x_end, line, score, strong and the ``text`` column."""
    lines = int(df["line"].max()) + 1 if len(df) else 1
    xs = alt.Scale(domain=[0, per_line], nice=False, zero=True)
    ys = alt.Scale(domain=[0, lines], nice=False, reverse=True)
    base = alt.Chart(df, title=alt.Title(title, anchor="start")).transform_calculate(
        line_top="datum.line + 0.1", line_end="datum.line + 0.9", mid="(datum.x + datum.x_end) / 2",
        centre="datum.line + 0.5")
    boxes = base.mark_rect(cornerRadius=3).encode(
        x=alt.X("x:Q", scale=xs, axis=None), x2="x_end:Q", y=alt.Y("line_top:Q", scale=ys, axis=None), y2="line_end:Q",
        color=alt.Color("score:Q", title="attribution",
                        scale=alt.Scale(scheme=DIVERGING, reverse=True, domain=[-vmax, vmax], domainMid=0, clamp=True),
                        legend=alt.Legend(orient="bottom", format=".2g", gradientLength=160)),
        tooltip=tooltip)
    words = base.mark_text(fontSize=13, font="monospace").encode(
        x=alt.X("mid:Q", scale=xs), y=alt.Y("centre:Q", scale=ys), text=f"{text}:N",
        color=alt.condition("datum.strong", alt.value("white"), alt.value("#111")), tooltip=tooltip)
    return alt.layer(boxes, words).properties(width=int(per_line * char_px), height=28 * lines)
