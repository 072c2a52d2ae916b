"""Chart and image builders for the Attention, Synthesizers, Latent space and Capsules pages.

Pure functions (no Streamlit, no models): result arrays in, Altair charts or uint8 images out.
Every chart has tooltips. Heatmaps of attention use one sequential scale from 0; charts that
put several maps side by side take a shared ``vmax`` so that they compare honestly.

- attention: :func:`token_labels`, :func:`attention_map_chart`, :func:`head_grid_chart`,
  :func:`facet_maps_chart`, :func:`overlay_chart`, :func:`head_stat_chart`,
  :func:`mix_weights_chart`, :func:`token_attribution_chart`
- latent: :func:`scatter_chart`, :func:`kl_chart`, :func:`digit_uri`
- capsules: :func:`routing_grid_chart`, :func:`routing_types_chart`
- images: :func:`mosaic`, :func:`png_bytes`
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from app.charts import PAD, cells, grid_frame, picture_layer
from app.charts import built_fast as _built_fast

SEQUENTIAL = "viridis"  # attention weights, routing coefficients: 0 .. max
OVERLAY = "inferno"  # heat drawn over a digit
DIVERGING = "redblue"  # signed scores, reversed: positive = red
CATEGORY = "tableau10"  # digit classes
MAP_SIZE = 240  # px, side of a single attention map
SMALL = 64  # px, side of a map in a small-multiples grid
CLS = "CLS"


# --------------------------------------------------------------------------- cells


def fit(size: int, n: int) -> int:
    """The side closest to ``size`` px that gives each of ``n`` cells a whole number of pixels (no seams)."""
    return n * max(1, round(size / n))


def _weight_color(vmax: float | None, title: str = "attention", scheme: str = SEQUENTIAL,
                  legend: bool = True, kind: str = "linear") -> alt.Color:
    domain = [0.0, float(vmax)] if vmax else alt.Undefined
    scale = alt.Scale(type=kind, scheme=scheme, domain=domain, clamp=True, zero=True)
    return alt.Color("weight:Q", title=title, scale=scale,
                     legend=alt.Legend(orient="bottom", format=".2g", gradientLength=160) if legend else None)


# --------------------------------------------------------------------------- attention maps


def token_labels(n_tokens: int, tokens: Sequence[str] = ()) -> list[str]:
    """Names of the tokens of a map: the given text tokens (numbered), or CLS and patches (row, col)."""
    if tokens:
        return [f"{i}:{t}" for i, t in enumerate(tokens)]
    grid = math.isqrt(max(n_tokens - 1, 0))
    return [CLS] + [f"patch ({i // grid}, {i % grid})" for i in range(n_tokens - 1)]


def map_frame(attention: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """A (T, T) attention map as rows (row, col, query, key, weight)."""
    df = grid_frame(attention, "weight")
    names = pd.Index(list(labels))
    if names.is_unique:  # each name once, numbered in the data: the chart's data is 3x smaller
        df["query"] = pd.Categorical.from_codes(df["row"].to_numpy(), categories=names)
        df["key"] = pd.Categorical.from_codes(df["col"].to_numpy(), categories=names)
    else:
        df["query"], df["key"] = names.to_numpy()[df["row"].to_numpy()], names.to_numpy()[df["col"].to_numpy()]
    return df


_MAP_TOOLTIP = [alt.Tooltip("query:N", title="query (row)"), alt.Tooltip("key:N", title="key (column)"),
                alt.Tooltip("weight:Q", format=".4f")]


@_built_fast
def attention_map_chart(attention: np.ndarray, labels: Sequence[str], title: str = "", vmax: float | None = None,
                        size: int = MAP_SIZE, token_axes: bool = False) -> alt.Chart:
    """One (T, T) attention map: rows are queries, columns keys; token names on the axes if asked."""
    df = map_frame(attention, labels)
    T = attention.shape[-1]
    base = alt.Chart(df, title=title).mark_rect()
    if token_axes:  # text: name every token on both axes
        order = list(dict.fromkeys(labels))
        axis = {"labelOverlap": False, "labelLimit": 110, "ticks": False, "domain": False}
        chart = base.encode(x=alt.X("key:N", sort=order, title="key", axis=alt.Axis(labelAngle=-50, **axis)),
                            y=alt.Y("query:N", sort=order, title="query", axis=alt.Axis(**axis)))
    else:
        chart = cells(base, (T, T))
    side = fit(size, T)
    return chart.encode(color=_weight_color(vmax), tooltip=_MAP_TOOLTIP).properties(
        width=side, height=side, autosize=PAD)


def grid_maps_frame(maps: np.ndarray, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """(L, H, h, w) maps as long rows (layer, head, row, col, weight[, query, key])."""
    a = np.asarray(maps, dtype=np.float64)
    L, H, h, w = a.shape
    layer, head, row, col = np.indices(a.shape)
    df = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), "row": row.ravel(), "col": col.ravel(),
                       "weight": a.ravel()})
    if labels is not None:
        names = np.asarray(list(labels), dtype=object)
        df["query"], df["key"] = names[df["row"].to_numpy()], names[df["col"].to_numpy()]
    return df


def _greys(pixels: np.ndarray) -> list[str]:
    """Literal grey colours for a digit drawn under a heat map (no second colour scale)."""
    return [f"#{v:02x}{v:02x}{v:02x}" for v in (np.clip(np.ravel(pixels), 0, 1) * 176).astype(int)]


def _underlay_frame(pixels: np.ndarray, L: int, H: int) -> pd.DataFrame:
    """The digit (28, 28) repeated for every (layer, head) panel, on the pixel grid."""
    df = grid_frame(pixels, "pixel")
    n = len(df)
    grey = _greys(df["pixel"].to_numpy())
    return pd.DataFrame({"layer": np.repeat(np.arange(L), H * n), "head": np.tile(np.repeat(np.arange(H), n), L),
                         "row": np.tile(df["row"].to_numpy(), L * H), "col": np.tile(df["col"].to_numpy(), L * H),
                         "grey": np.tile(np.asarray(grey, dtype=object), L * H), "kind": "pixel"})


@_built_fast
def head_grid_chart(maps: np.ndarray, title: str = "", vmax: float | None = None, cell: int = SMALL,
                    labels: Sequence[str] | None = None, selected: tuple[int, int] | None = None,
                    pixels: np.ndarray | None = None) -> alt.FacetChart:
    """Small multiples of (L, H, h, w) maps: a row per layer, a column per head, one colour scale.

    ``labels`` names the tokens of T x T maps (tooltips); ``pixels`` (28, 28) puts the digit under
    maps on a coarser patch grid; ``selected`` (layer, head) is outlined.
    """
    L, H, h, w = np.shape(maps)
    df = grid_maps_frame(maps, labels).assign(kind="weight")
    side = (np.shape(pixels)[0] if pixels is not None else h)
    scale = side // h  # pixels per map cell when the digit lies underneath
    df["row"], df["col"] = df["row"] * scale, df["col"] * scale
    if pixels is not None:
        df = pd.concat([df, _underlay_frame(pixels, L, H)], ignore_index=True)
    df["chosen"] = False if selected is None else (df["layer"] == selected[0]) & (df["head"] == selected[1])
    tooltip = [alt.Tooltip("layer:O"), alt.Tooltip("head:O")]
    tooltip += _MAP_TOOLTIP if labels is not None else [alt.Tooltip("weight:Q", format=".4f")]
    xs = alt.Scale(domain=[0, side], nice=False, zero=False)
    ys = alt.Scale(domain=[0, side], nice=False, zero=False, reverse=True)
    cells = alt.Chart().transform_filter("datum.kind == 'weight'").transform_calculate(
        col_end=f"datum.col + {scale}", row_end=f"datum.row + {scale}")
    cells = cells.mark_rect().encode(
        x=alt.X("col:Q", axis=None, scale=xs), x2="col_end:Q", y=alt.Y("row:Q", axis=None, scale=ys), y2="row_end:Q",
        color=_weight_color(vmax, "attention (√ scale)", OVERLAY if pixels is not None else SEQUENTIAL, kind="sqrt"),
        tooltip=tooltip)
    layers = [cells]
    if pixels is not None:
        under = alt.Chart().transform_filter("datum.kind == 'pixel'").transform_calculate(
            col_end="datum.col + 1.04", row_end="datum.row + 1.04").mark_rect().encode(
            x=alt.X("col:Q", axis=None, scale=xs), x2="col_end:Q", y=alt.Y("row:Q", axis=None, scale=ys),
            y2="row_end:Q", color=alt.Color("grey:N", scale=None))  # literal colours: no second colour scale
        top = vmax or float(np.max(maps))
        cells = cells.encode(opacity=alt.Opacity("weight:Q", legend=None,
                                                 scale=alt.Scale(type="sqrt", domain=[0, top], range=[0.0, 0.95])))
        layers = [under, cells]
    frame = alt.Chart().transform_filter("datum.chosen").transform_aggregate(n="count()", groupby=["layer", "head"])
    frame = frame.mark_rect(fill=None, stroke="#e4572e", strokeWidth=3).encode(
        x=alt.X(datum=0, scale=xs), x2=alt.X2(datum=side), y=alt.Y(datum=0, scale=ys), y2=alt.Y2(datum=side))
    layered = alt.layer(*layers, frame, data=df).properties(width=fit(cell, side), height=fit(cell, side))
    return layered.facet(
        row=alt.Row("layer:O", title="layer", header=alt.Header(labelAngle=0)),
        column=alt.Column("head:O", title="head"), title=title,
    ).configure_facet(spacing=4).properties(autosize=PAD)


@_built_fast
def facet_maps_chart(maps: Mapping[str, np.ndarray], labels: Sequence[str], vmax: float, size: int = 170,
                     title: str = "", columns: int = 3) -> alt.FacetChart:
    """Several (T, T) maps side by side (``columns`` per row), a panel per name, on one colour scale [0, vmax]."""
    frames = [map_frame(a, labels).assign(model=name) for name, a in maps.items()]
    df = pd.concat(frames, ignore_index=True)
    T = next(iter(maps.values())).shape[-1]
    panel = cells(alt.Chart().mark_rect(), (T, T)).encode(
        color=_weight_color(vmax), tooltip=[alt.Tooltip("model:N"), *_MAP_TOOLTIP])
    return panel.properties(width=fit(size, T), height=fit(size, T)).facet(
        alt.Facet("model:N", title=None, sort=list(maps), header=alt.Header(labelFontSize=13)), data=df,
        columns=columns, title=title,
    ).configure_facet(spacing=10).properties(autosize=PAD)


@_built_fast
def facet_overlays_chart(pixels: np.ndarray, heats: Mapping[str, np.ndarray], vmax: float, size: int = 112,
                         value_name: str = "attention") -> alt.FacetChart:
    """Several (28, 28) heat maps over the same digit, a panel per name, one colour scale [0, vmax] and one legend."""
    base = grid_frame(pixels, "pixel")
    frames = []
    for name, heat in heats.items():
        frames.append(base.assign(name=name, grey=_greys(pixels), weight=np.asarray(heat, dtype=np.float64).ravel()))
    df = pd.concat(frames, ignore_index=True)
    h, w = np.shape(pixels)
    under = cells(alt.Chart().mark_rect(), (h, w)).encode(color=alt.Color("grey:N", scale=None))
    over = cells(alt.Chart().mark_rect(), (h, w), overlap=False).encode(
        color=alt.Color("weight:Q", title=value_name, scale=alt.Scale(scheme=OVERLAY, domain=[0, vmax], clamp=True),
                        legend=alt.Legend(orient="bottom", format=".2g", gradientLength=160)),
        opacity=alt.Opacity("weight:Q", scale=alt.Scale(domain=[0, vmax], range=[0.0, 0.9], clamp=True), legend=None),
        tooltip=[alt.Tooltip("name:N", title="model"), alt.Tooltip("row:O"), alt.Tooltip("col:O"),
                 alt.Tooltip("weight:Q", title=value_name, format=".4f")])
    return alt.layer(under, over, data=df).properties(width=fit(size, w), height=fit(size, h)).facet(
        column=alt.Column("name:N", title=None, sort=list(heats), header=alt.Header(labelFontSize=13)),
    ).configure_facet(spacing=8).properties(autosize=PAD)


@_built_fast
def overlay_chart(pixels: np.ndarray, heat: np.ndarray, title: str = "", vmax: float | None = None,
                  size: int = 196, value_name: str = "attention", vmin: float = 0.0) -> alt.LayerChart:
    """A heat map (28, 28) over the grey digit: the more weight, the more opaque the colour.

    The colour runs from ``vmin`` (transparent) to ``vmax`` (the map's maximum by default).
    """
    if vmax or vmin != 0 or not np.nanmax(heat) > 0:
        vmax = float(vmax) if vmax else float(max(np.nanmax(heat), vmin + 1e-12))
        domain: dict[str, object] = {"domain": [vmin, vmax]}
    else:  # 0 .. the map's maximum: left to Vega, so that maps differ in data only (charts.in_place)
        domain = {"zero": True}
    df = grid_frame(pixels, "pixel")
    df["weight"] = np.asarray(heat, dtype=np.float64).ravel()
    h, w = np.shape(pixels)
    base = alt.Chart(df, title=title)
    under = picture_layer(pixels, fit(size, w), fit(size, h), top=0xb0 / 255)
    over = cells(base.mark_rect(), (h, w), overlap=False).encode(
        color=alt.Color("weight:Q", title=value_name, scale=alt.Scale(scheme=OVERLAY, clamp=True, **domain),
                        legend=alt.Legend(orient="bottom", format=".2g", gradientLength=160)),
        opacity=alt.Opacity("weight:Q", scale=alt.Scale(range=[0.0, 0.9], clamp=True, **domain), legend=None),
        tooltip=[alt.Tooltip("row:O"), alt.Tooltip("col:O"), alt.Tooltip("pixel:Q", format=".3f"),
                 alt.Tooltip("weight:Q", title=value_name, format=".4f")],
    )
    # Opacity's (hidden) legend resolved on its own, so the colour legend stays a gradient.
    return alt.layer(under, over).resolve_legend(opacity="independent").properties(
        width=fit(size, w), height=fit(size, h), autosize=PAD)


def stat_frame(stats: Mapping[str, np.ndarray], value_name: str) -> pd.DataFrame:
    """Per-model (L, H) statistics as rows (model, layer, head, value)."""
    rows = []
    for name, values in stats.items():
        a = np.asarray(values, dtype=np.float64)
        layer, head = np.indices(a.shape)
        rows.append(pd.DataFrame({"model": name, "layer": layer.ravel(), "head": head.ravel(), value_name: a.ravel()}))
    return pd.concat(rows, ignore_index=True)


@_built_fast
def head_stat_chart(stats: Mapping[str, np.ndarray], value_name: str, title: str = "", cell: int = 34,
                    fmt: str = ".2f", columns: int = 3) -> alt.FacetChart:
    """A layer x head table per model (``columns`` per row), coloured and labelled with the statistic, one scale."""
    df = stat_frame(stats, value_name)
    df["label"] = [format(v, fmt) for v in df[value_name]]
    vmax = float(max(df[value_name].max(), 1e-12))
    df["dark"] = df[value_name] > 0.55 * vmax
    base = alt.Chart().encode(x=alt.X("head:O", title="head", axis=alt.Axis(labelAngle=0)),
                              y=alt.Y("layer:O", title="layer"))
    cells = base.mark_rect().encode(
        color=alt.Color(f"{value_name}:Q", scale=alt.Scale(scheme="blues", domain=[0, vmax]),
                        legend=alt.Legend(orient="bottom", gradientLength=160)),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("layer:O"), alt.Tooltip("head:O"),
                 alt.Tooltip(f"{value_name}:Q", format=".4g")])
    text = base.mark_text(fontSize=10).encode(
        text="label:N", color=alt.condition("datum.dark", alt.value("white"), alt.value("#222")))
    return alt.layer(cells, text, data=df).properties(width=alt.Step(cell), height=alt.Step(cell * 0.75)).facet(
        alt.Facet("model:N", title=None, sort=list(stats)), columns=columns, title=title,
    ).configure_facet(spacing=14).properties(autosize=PAD)


@_built_fast
def mix_weights_chart(weights: np.ndarray, components: Sequence[str] = ("random", "dot"),
                      title: str = "Mixing weights") -> alt.Chart:
    """Stacked bars of each head's mixing weights (L, H, C), a panel per layer."""
    a = np.asarray(weights, dtype=np.float64)
    layer, head, comp = np.indices(a.shape)
    names = np.asarray(list(components), dtype=object)
    df = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), "component": names[comp.ravel()],
                       "weight": a.ravel()})
    bars = alt.Chart().mark_bar().encode(
        x=alt.X("head:O", title="head", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("weight:Q", title="weight", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("component:N", title="logits from", sort=list(components), scale=alt.Scale(scheme="set2"),
                        legend=alt.Legend(orient="bottom")),
        order=alt.Order("component:N"),
        tooltip=[alt.Tooltip("layer:O"), alt.Tooltip("head:O"), alt.Tooltip("component:N"),
                 alt.Tooltip("weight:Q", format=".3f")],
    ).properties(width=alt.Step(22), height=160)
    return bars.facet(data=df, column=alt.Column("layer:O", title="layer"), title=title).configure_facet(
        spacing=10).properties(autosize=PAD)


def token_attribution_frame(tokens: Sequence[str], scores: np.ndarray, per_line: float = 56) -> pd.DataFrame:
    """Tokens laid out like text (wrapped at ``per_line`` characters), each with its score."""
    rows, x, line = [], 0.0, 0
    for i, (tok, score) in enumerate(zip(tokens, np.asarray(scores, dtype=np.float64))):
        width = max(len(tok), 1) + 1.5
        if x > 0 and x + width > per_line:
            x, line = 0.0, line + 1
        rows.append({"index": i, "token": tok, "score": float(score), "x": x, "x_end": x + width - 0.3,
                     "line": line})
        x += width
    return pd.DataFrame(rows)


def _token_row(df: pd.DataFrame, title: str, vmax: float, per_line: float, char_px: float) -> alt.LayerChart:
    lines = int(df["line"].max()) + 1 if len(df) else 1
    xs = alt.Scale(domain=[0, per_line], nice=False, zero=True)
    ys = alt.Scale(domain=[0, lines], nice=False, reverse=True)
    tooltip = [alt.Tooltip("index:O", title="position"), alt.Tooltip("token:N"),
               alt.Tooltip("score:Q", title="attribution", format=".4f")]
    base = alt.Chart(df, title=alt.Title(title, anchor="start")).transform_calculate(
        line_top="datum.line + 0.1", line_end="datum.line + 0.9", mid="(datum.x + datum.x_end) / 2",
        centre="datum.line + 0.5")
    boxes = base.mark_rect(cornerRadius=3).encode(
        x=alt.X("x:Q", scale=xs, axis=None), x2="x_end:Q", y=alt.Y("line_top:Q", scale=ys, axis=None), y2="line_end:Q",
        color=alt.Color("score:Q", title="attribution",
                        scale=alt.Scale(scheme=DIVERGING, reverse=True, domain=[-vmax, vmax], domainMid=0, clamp=True),
                        legend=alt.Legend(orient="bottom", format=".2g", gradientLength=160)),
        tooltip=tooltip)
    text = base.mark_text(fontSize=13, font="monospace").encode(
        x=alt.X("mid:Q", scale=xs), y=alt.Y("centre:Q", scale=ys), text="token:N",
        color=alt.condition("datum.strong", alt.value("white"), alt.value("#111")), tooltip=tooltip)
    return alt.layer(boxes, text).properties(width=int(per_line * char_px), height=28 * lines)


@_built_fast
def token_attribution_chart(sentences: Mapping[str, tuple[Sequence[str], np.ndarray]], vmax: float | None = None,
                            per_line: float = 64, char_px: float = 9.0) -> alt.VConcatChart:
    """Sentences as rows of coloured token boxes carrying their text (diverging scale centred at 0, shared).

    ``sentences`` maps a title to (tokens, scores); the text is drawn by Vega as plain text, never markup.
    """
    frames = {name: token_attribution_frame(tokens, scores, per_line) for name, (tokens, scores) in sentences.items()}
    vmax = float(vmax) if vmax else float(max([1e-12, *(np.abs(f["score"]).max() for f in frames.values() if len(f))]))
    rows = []
    for name, df in frames.items():
        df["strong"] = df["score"].abs() > 0.6 * vmax
        rows.append(_token_row(df, name, vmax, per_line, char_px))
    return alt.vconcat(*rows, spacing=12).resolve_scale(color="shared").properties(autosize=PAD)


# --------------------------------------------------------------------------- latent space


def digit_uri(pixels: np.ndarray, scale: int = 2) -> str:
    """A (28, 28) digit as a PNG data URI, enlarged ``scale`` times (for image tooltips)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(mosaic(np.asarray(pixels)[None, None], pad=0,
                                                                        scale=scale))).decode()


def scatter_frame(coords: np.ndarray, labels: np.ndarray, uris: Sequence[str] | None = None) -> pd.DataFrame:
    """Projected points as rows (index, x, y, label[, image])."""
    df = pd.DataFrame({"index": np.arange(len(coords)), "x": np.asarray(coords[:, 0], dtype=np.float64),
                       "y": np.asarray(coords[:, 1], dtype=np.float64),
                       "label": [str(v) if v >= 0 else "?" for v in np.asarray(labels)]})
    if uris is not None:
        df["image"] = list(uris)
    return df


POINT, BRUSH = "point", "brush"  # names of the scatter's selection parameters


@_built_fast
def scatter_chart(coords: np.ndarray, labels: np.ndarray, uris: Sequence[str] | None = None, title: str = "",
                  x_title: str = "x", y_title: str = "y", marked: Sequence[int] = (),
                  size: int = 430) -> alt.LayerChart:
    """The data set as points coloured by class: click selects one point, dragging a box selects many.

    Tooltips show the index and label (and the digit itself when ``uris`` are given); ``marked``
    indices are drawn as large outlined markers (e.g. the ends of an interpolation).
    """
    df = scatter_frame(coords, labels, uris)
    point = alt.selection_point(name=POINT, fields=["index"], on="click", clear="dblclick")
    brush = alt.selection_interval(name=BRUSH, encodings=["x", "y"])
    tooltip = [alt.Tooltip("index:O", title="held-out #"), alt.Tooltip("label:N", title="label")]
    if uris is not None:
        tooltip.append(alt.Tooltip("image:N", title="image"))  # vega-tooltip draws the key "image" as a picture
    base = alt.Chart(df).encode(x=alt.X("x:Q", title=x_title, scale=alt.Scale(zero=False)),
                                y=alt.Y("y:Q", title=y_title, scale=alt.Scale(zero=False)))
    dots = base.mark_circle(size=26).encode(
        color=alt.Color("label:N", title="digit", scale=alt.Scale(scheme=CATEGORY), legend=alt.Legend(orient="right")),
        opacity=alt.condition(brush, alt.value(0.85), alt.value(0.15)),
        tooltip=tooltip,
    ).add_params(point, brush)
    layers = [dots]
    if marked:
        ring = df[df["index"].isin(list(marked))].assign(end=lambda d: [f"#{i}" for i in d["index"]])
        layers.append(alt.Chart(ring).mark_point(size=240, shape="diamond", strokeWidth=2.5, color="black").encode(
            x="x:Q", y="y:Q", tooltip=[alt.Tooltip("end:N", title="path end"), alt.Tooltip("label:N")]))
    return alt.layer(*layers, title=title).properties(width=size, height=size, autosize=PAD)


@_built_fast
def kl_chart(kl: np.ndarray, variance: np.ndarray, active: np.ndarray, threshold: float,
             title: str = "KL per dimension") -> alt.Chart:
    """KL(q(z_k|x) || N(0, 1)) per latent dimension, active units (Burda et al.) in a stronger colour."""
    df = pd.DataFrame({"dim": np.arange(len(kl)), "kl": np.asarray(kl, dtype=np.float64),
                       "variance": np.asarray(variance, dtype=np.float64),
                       "state": np.where(np.asarray(active), "active", "inactive")})
    return alt.Chart(df, title=title).mark_bar().encode(
        x=alt.X("dim:O", title="latent dimension", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("kl:Q", title="mean KL (nats)"),
        color=alt.Color("state:N", title=f"Cov(E[z]) > {threshold:g}",
                        scale=alt.Scale(domain=["active", "inactive"], range=["#2a6fb0", "#c7c7c7"]),
                        legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip("dim:O", title="dimension"), alt.Tooltip("kl:Q", title="KL (nats)", format=".4f"),
                 alt.Tooltip("variance:Q", title="Cov_x(E_q[z_k])", format=".4g"), alt.Tooltip("state:N")],
    ).properties(width=alt.Step(26), height=200, autosize=PAD)


# --------------------------------------------------------------------------- capsules


@_built_fast
def routing_grid_chart(grid: np.ndarray, title: str = "", cell: int = 26, vmax: float | None = None) -> alt.FacetChart:
    """Routing coefficients on the primary capsules' 6 x 6 grid, a panel per iteration: (iters, 6, 6)."""
    a = np.asarray(grid, dtype=np.float64)
    it, row, col = np.indices(a.shape)
    df = pd.DataFrame({"iteration": it.ravel() + 1, "row": row.ravel(), "col": col.ravel(), "weight": a.ravel()})
    n = a.shape[1]
    scale = alt.Scale(scheme=SEQUENTIAL, domain=[float(a.min()), float(vmax or a.max())], clamp=True)
    panel = cells(alt.Chart().mark_rect(), (n, a.shape[2])).encode(
        color=alt.Color("weight:Q", title="c_ij", scale=scale, legend=alt.Legend(orient="bottom", format=".3f")),
        tooltip=[alt.Tooltip("iteration:O"), alt.Tooltip("row:O", title="grid row"),
                 alt.Tooltip("col:O", title="grid column"), alt.Tooltip("weight:Q", title="c_ij", format=".4f")])
    return panel.properties(width=cell * n, height=cell * n).facet(
        data=df, column=alt.Column("iteration:O", title="routing iteration"), title=title,
    ).configure_facet(spacing=8).properties(autosize=PAD)


@_built_fast
def routing_types_chart(types: np.ndarray, labels: Sequence[str], title: str = "", cell: int = 15) -> alt.FacetChart:
    """Routing coefficients per primary capsule type and digit class, a panel per iteration: (iters, 16, 10)."""
    a = np.asarray(types, dtype=np.float64)
    it, typ, cls = np.indices(a.shape)
    names = np.asarray(list(labels), dtype=object)
    df = pd.DataFrame({"iteration": it.ravel() + 1, "type": typ.ravel(), "class": names[cls.ravel()],
                       "weight": a.ravel()})
    cells = alt.Chart().mark_rect().encode(
        x=alt.X("class:N", sort=list(labels), title="digit capsule", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("type:O", title="primary type"),
        color=alt.Color("weight:Q", title="c_ij", scale=alt.Scale(scheme=SEQUENTIAL, domain=[float(a.min()),
                                                                                             float(a.max())]),
                        legend=alt.Legend(orient="bottom", format=".3f")),
        tooltip=[alt.Tooltip("iteration:O"), alt.Tooltip("type:O", title="primary type"),
                 alt.Tooltip("class:N", title="digit capsule"), alt.Tooltip("weight:Q", title="c_ij", format=".4f")])
    return cells.properties(width=alt.Step(cell), height=alt.Step(cell)).facet(
        data=df, column=alt.Column("iteration:O", title="routing iteration"), title=title,
    ).configure_facet(spacing=8).properties(autosize=PAD)


# --------------------------------------------------------------------------- images


def mosaic(images: np.ndarray, pad: int = 2, scale: int = 2, background: float = 0.35,
           max_width: int | None = None) -> np.ndarray:
    """(R, C, h, w) images in [0, 1] as one uint8 picture, a grey ``pad`` between them, enlarged ``scale`` times.

    With ``max_width``, the enlargement shrinks (down to 1, by nearest-neighbour resampling when it
    is not a whole number) so that the picture fits that many pixels.
    """
    a = np.clip(np.asarray(images, dtype=np.float32), 0, 1)
    R, C, h, w = a.shape
    out = np.full((R * h + (R + 1) * pad, C * w + (C + 1) * pad), background, dtype=np.float32)
    for r in range(R):
        for c in range(C):
            top, left = pad + r * (h + pad), pad + c * (w + pad)
            out[top:top + h, left:left + w] = a[r, c]
    picture = (out * 255 + 0.5).astype(np.uint8)
    factor = float(scale) if not max_width else max(1.0, min(float(scale), max_width / picture.shape[1]))
    if factor == int(factor):
        return np.kron(picture, np.ones((int(factor), int(factor)), dtype=np.uint8)) if factor > 1 else picture
    from PIL import Image

    size = (round(picture.shape[1] * factor), round(picture.shape[0] * factor))
    return np.asarray(Image.fromarray(picture, mode="L").resize(size, Image.Resampling.NEAREST))


def png_bytes(image: np.ndarray, optimize: bool = False) -> bytes:
    """A uint8 grey image as PNG bytes (``optimize``: smaller, about 3 times slower to encode)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L").save(buf, format="PNG", optimize=optimize)
    return buf.getvalue()
