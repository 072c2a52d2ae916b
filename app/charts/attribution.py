"""The attribution heatmap: a signed attribution over the digit it explains, red for positive, blue for negative.

Its data are named datasets and its colour range is read from the data, so another map updates
a drawn chart in place (:func:`attribution_spec`), without a new Vega view.
"""

from __future__ import annotations

import functools

import altair as alt
import numpy as np
import pandas as pd

from app.charts.base import (
    CANVAS,
    DIVERGING,
    IMAGE_SIZE,
    PAD,
    built_fast,
    cells,
    grey_uri,
    grid_frame,
    symmetric_max,
    token_boxes,
)
from app.charts.images import as_picture, grid_factor, luminance, picture_uri, pool

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
    chart = attribution_layout(title, size, tuple(np.shape(pixels))).copy(deep=False)
    # set, not .properties(): that would check every record against the schema
    chart.datasets = {name: frame.to_dict("records") for name, frame in
                      attribution_datasets(pixels, attribution, vmax).items()}
    return chart


def attribution_datasets(pixels: np.ndarray, attribution: np.ndarray, vmax: float | None,
                         picture: str | None = None) -> dict[str, pd.DataFrame]:
    """The data of :func:`attribution_layout`: the digit as a picture (or ``picture``, a data URI), and the cells."""
    return {ATTRIBUTION_PICTURE: pd.DataFrame({"url": [picture or grey_uri(pixels, _PICTURE_TOP)]}),
            ATTRIBUTION_CELLS: attribution_frame(pixels, attribution, vmax)}


def image_cells(image: np.ndarray, attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """A user's image (C, H, W) and its attribution (C, H, W) as the chart draws them: grey values and the
    attribution summed over channels on a grid of at most MAX_GRID cells a side (blocks summed: 224x224 -> 56x56),
    and the image itself, RGB at full size, as a PNG data URI under the cells."""
    picture = as_picture(image)  # (H, W) or (H, W, 3)
    attr = np.asarray(attribution, dtype=np.float64)
    attr = attr.sum(0) if attr.ndim == 3 else attr  # (H, W)
    f = grid_factor(attr.shape)
    return pool(luminance(picture), f, "mean"), pool(attr, f, "sum"), picture_uri(picture, _PICTURE_TOP)


def user_image_chart(image: np.ndarray, attribution: np.ndarray, vmax: float | None = None,
                     title: str = "Attribution", size: int = IMAGE_SIZE) -> alt.LayerChart:
    """:func:`attribution_chart` over a user's image of any size, RGB or grey (see :func:`image_cells`)."""
    grey, attr, uri = image_cells(image, attribution)
    chart = attribution_layout(title, size, tuple(grey.shape)).copy(deep=False)
    chart.datasets = {name: frame.to_dict("records") for name, frame in
                      attribution_datasets(grey, attr, vmax, uri).items()}
    return chart


@functools.lru_cache(maxsize=32)
@built_fast
def attribution_layout(title: str, size: int, shape: tuple[int, ...]) -> alt.LayerChart:
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
def cascade_chart(maps: dict[str, np.ndarray], size: int = 84, columns: int = 6) -> alt.FacetChart:
    """Attribution maps side by side, in the given order, each scaled by its own largest |value|.

    Randomised models give attributions on other scales, so each map is shown relative to itself
    (-1..1): what is compared is where attribution goes, not how much there is.
    """
    frames = []
    for name, a in maps.items():
        a = np.asarray(a, dtype=np.float64)
        frame = grid_frame(a / max(float(np.abs(a).max()), 1e-12), "relative")
        frames.append(frame.assign(map=name))
    shape = np.shape(next(iter(maps.values())))
    panel = cells(alt.Chart().mark_rect(), shape, overlap=False).encode(
        color=alt.Color("relative:Q", title="attribution / its largest |value|",
                        scale=alt.Scale(scheme=DIVERGING, reverse=True, domain=[-1, 1], domainMid=0),
                        legend=alt.Legend(orient="bottom", gradientLength=200, format=".1f")),
        tooltip=[alt.Tooltip("map:N"), alt.Tooltip("row:O"), alt.Tooltip("col:O"),
                 alt.Tooltip("relative:Q", format=".3f")])
    return panel.properties(width=size, height=size, usermeta=CANVAS).facet(
        alt.Facet("map:N", title=None, sort=list(maps), header=alt.Header(labelFontSize=11)),
        data=pd.concat(frames, ignore_index=True), columns=columns,
    ).configure_facet(spacing=8).properties(autosize=PAD)


@built_fast
def randomisation_chart(layers: tuple[str, ...], spearman: np.ndarray, title: str = "") -> alt.LayerChart:
    """Rank correlation with the trained model's map as layers are re-initialised from the top (Adebayo et al.
    2018, fig. 2): a map that depends on what the model learned falls towards 0."""
    df = pd.DataFrame({"step": range(len(layers) + 1), "layers": ["none", *(f"+ {name}" for name in layers)],
                       "spearman": [1.0, *np.asarray(spearman, dtype=np.float64)]})
    line = alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("layers:N", sort=None, title="layers re-initialised, from the output down",
                axis=alt.Axis(labelAngle=-40)),
        y=alt.Y("spearman:Q", title="Spearman ρ with the trained model's map", scale=alt.Scale(domain=[-0.2, 1])),
        tooltip=[alt.Tooltip("step:O", title="layers re-initialised"), alt.Tooltip("layers:N", title="last one"),
                 alt.Tooltip("spearman:Q", format=".3f")])
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(strokeDash=[4, 4], color="gray").encode(y="y:Q")
    return alt.layer(line, zero).properties(width=max(240, 34 * len(df)), height=220, title=title, autosize=PAD)


def word_attribution_frame(pieces: tuple[str, ...], scores: np.ndarray, per_line: float = 64) -> pd.DataFrame:
    """A text's attributions as readable words (WordPiece ``##`` / BPE ``Ġ`` / SentencePiece ``▁`` pieces merged,
    their scores summed), laid out like text, each with its pieces for the tooltip."""
    from analyzers.tokens import merge_scores

    rows, x, line = [], 0.0, 0
    for i, (word, score) in enumerate(merge_scores(pieces, np.asarray(scores, dtype=np.float64))):
        width = max(len(word.text), 1) + 1.5
        if x > 0 and x + width > per_line:
            x, line = 0.0, line + 1
        rows.append({"index": i, "word": word.text, "pieces": word.tooltip, "score": score, "x": x,
                     "x_end": x + width - 0.3, "line": line})
        x += width
    return pd.DataFrame(rows)


@built_fast
def word_attribution_chart(pieces: tuple[str, ...], scores: np.ndarray, title: str = "", vmax: float | None = None,
                           per_line: float = 64, char_px: float = 9.0) -> alt.LayerChart:
    """A text as coloured word boxes (red raises the explained logit, blue lowers it; scale centred at 0), the
    words drawn by Vega as plain text, never markup; the tooltip names the tokenizer's pieces."""
    df = word_attribution_frame(pieces, scores, per_line)
    vmax = float(vmax) if vmax else max(1e-12, float(df["score"].abs().max()) if len(df) else 0.0)
    df["strong"] = df["score"].abs() > 0.6 * vmax
    tooltip = [alt.Tooltip("word:N"), alt.Tooltip("pieces:N", title="tokens"),
               alt.Tooltip("score:Q", title="attribution", format=".4g")]
    return token_boxes(df, title, vmax, per_line, char_px, "word", tooltip).properties(autosize=PAD)
