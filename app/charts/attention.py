"""Attention figures: maps per layer and head, maps over the digit, head statistics, token attributions.

Pure functions (no Streamlit, no models): result arrays in, Altair charts out. Every chart has
tooltips. Heatmaps of attention use one sequential scale from 0; charts that put several maps
side by side take a shared ``vmax`` so that they compare honestly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from app.charts.base import PAD, SEQUENTIAL, built_fast, cells, grid_frame, picture_layer, token_boxes

OVERLAY = "inferno"  # heat drawn over a digit

MAP_SIZE = 240  # px, side of a single attention map

SMALL = 64  # px, side of a map in a small-multiples grid

CLS = "CLS"

LABEL_PX = 12  # px between two token labels of 10 px text; denser tokens are named every k-th on the axes
TOKEN_LABEL_LIMIT = 70  # px, the longest token label on an axis (the tooltip names every token in full)
TOKEN_GUTTER = 104  # px left of a token map's cells: the axis title, the query labels, the padding


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


def token_axis_values(labels: Sequence[str], cell: float) -> list[str]:
    """The token labels an axis shows at ``cell`` px per token: every one when there is room, else every k-th.

    The last token ([SEP]) is always named; labels stay at least :data:`LABEL_PX` apart, so none overlap.
    """
    step = max(1, math.ceil(LABEL_PX / max(cell, 1e-9)))
    idx = list(range(0, len(labels), step))
    if len(idx) > 1 and idx[-1] != len(labels) - 1:
        idx[-1] = len(labels) - 1  # at least step + 1 after the one before
    return [labels[i] for i in idx]


def _token_axes(base: alt.Chart, labels: Sequence[str], cell: float) -> alt.Chart:
    """Keys on x and queries on y, named by token (every k-th when dense), sized so none overlap or spill."""
    order = list(dict.fromkeys(labels))
    shown = token_axis_values(order, cell)
    axis = {"values": shown, "labelOverlap": False, "labelLimit": TOKEN_LABEL_LIMIT, "labelFontSize": 10,
            "labelPadding": 3, "titleFontSize": 11, "titlePadding": 4, "ticks": False, "domain": False}
    return base.encode(x=alt.X("key:N", sort=order, title="key", axis=alt.Axis(labelAngle=-50 if cell >= 16 else -90,
                                                                               **axis)),
                       y=alt.Y("query:N", sort=order, title="query", axis=alt.Axis(**axis)))


@built_fast
def attention_map_chart(attention: np.ndarray, labels: Sequence[str], title: str = "", vmax: float | None = None,
                        size: int = MAP_SIZE, token_axes: bool = False) -> alt.Chart:
    """One (T, T) attention map: rows are queries, columns keys; token names on the axes if asked.

    With ``token_axes`` the chart is ``size`` px plus :data:`TOKEN_GUTTER` wide; the axes name every
    token that has room (every k-th otherwise) and the tooltip names each cell's query and key.
    """
    df = map_frame(attention, labels)
    T = attention.shape[-1]
    side = fit(size, T)
    base = alt.Chart(df, title=title).mark_rect()
    chart = _token_axes(base, labels, side / T) if token_axes else cells(base, (T, T))
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


@built_fast
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
        x=alt.X(datum=0, scale=xs, axis=None), x2=alt.X2(datum=side), y=alt.Y(datum=0, scale=ys, axis=None),
        y2=alt.Y2(datum=side))
    layered = alt.layer(*layers, frame, data=df).properties(width=fit(cell, side), height=fit(cell, side))
    return layered.facet(
        row=alt.Row("layer:O", title=None, header=_grid_header("layer")),
        column=alt.Column("head:O", title=None, header=_grid_header("head")), title=title, bounds="flush",
    ).configure_facet(spacing=4).properties(autosize=PAD)


def _grid_header(name: str) -> alt.Header:
    """Each row or column of a layer x head grid named in full ("layer 2", "head 11")."""
    return alt.Header(labelExpr=f"'{name} ' + datum.value", labelAngle=0, labelFontSize=11, labelPadding=4,
                      labelAlign="left" if name == "layer" else "center")  # right-aligned, Vega reserves twice the width


@built_fast
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


@built_fast
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


@built_fast
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


# --------------------------------------------------------------------------- head statistics


def stat_frame(stats: Mapping[str, np.ndarray], value_name: str) -> pd.DataFrame:
    """Per-model (L, H) statistics as rows (model, layer, head, value)."""
    rows = []
    for name, values in stats.items():
        a = np.asarray(values, dtype=np.float64)
        layer, head = np.indices(a.shape)
        rows.append(pd.DataFrame({"model": name, "layer": layer.ravel(), "head": head.ravel(), value_name: a.ravel()}))
    return pd.concat(rows, ignore_index=True)


@built_fast
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


@built_fast
def head_stats_chart(stats: Mapping[str, np.ndarray], formats: Mapping[str, str], title: str = "", cell: int = 23,
                     columns: int = 2) -> alt.ConcatChart:
    """Several statistics of every head, a layer x head table each (``columns`` per row), each on its own scale."""
    panels = []
    for name, values in stats.items():
        df = stat_frame({name: values}, "value")
        df["label"] = [format(v, formats.get(name, ".2f")) for v in df["value"]]
        vmax = float(max(df["value"].max(), 1e-12))
        df["dark"] = df["value"] > 0.55 * vmax
        axis = {"labelFontSize": 10, "titleFontSize": 11, "labelPadding": 3, "titlePadding": 4, "labelOverlap": False}
        base = alt.Chart(df, title=alt.Title(name, fontSize=12, anchor="start")).encode(
            x=alt.X("head:O", title="head", axis=alt.Axis(labelAngle=0, **axis)),
            y=alt.Y("layer:O", title="layer", axis=alt.Axis(**axis)))
        rects = base.mark_rect().encode(
            color=alt.Color("value:Q", title=name, scale=alt.Scale(scheme="blues", domain=[0, vmax]), legend=None),
            tooltip=[alt.Tooltip("layer:O"), alt.Tooltip("head:O"), alt.Tooltip("value:Q", title=name, format=".4g")])
        text = base.mark_text(fontSize=9).encode(
            text="label:N", color=alt.condition("datum.dark", alt.value("white"), alt.value("#222")))
        panels.append(alt.layer(rects, text).properties(width=alt.Step(cell), height=alt.Step(cell * 0.75)))
    return alt.concat(*panels, columns=columns, title=title, spacing=14).resolve_scale(color="independent").properties(
        autosize=PAD)


@built_fast
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


# --------------------------------------------------------------------------- token attribution


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
    tooltip = [alt.Tooltip("index:O", title="position"), alt.Tooltip("token:N"),
               alt.Tooltip("score:Q", title="attribution", format=".4f")]
    return token_boxes(df, title, vmax, per_line, char_px, "token", tooltip)


@built_fast
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
