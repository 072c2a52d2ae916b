"""The attribution heatmap: a signed attribution over the digit it explains, red for positive, blue for negative.

Its data are named datasets and its colour range is read from the data, so another map updates
a drawn chart in place (:func:`attribution_spec`), without a new Vega view.
"""

from __future__ import annotations

import functools

import altair as alt
import numpy as np
import pandas as pd

from app.charts.base import CANVAS, DIVERGING, IMAGE_SIZE, PAD, built_fast, cells, grey_uri, grid_frame, symmetric_max

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


def attribution_datasets(pixels: np.ndarray, attribution: np.ndarray, vmax: float | None) -> dict[str, pd.DataFrame]:
    """The data of :func:`attribution_layout`: the digit as a picture, and the cells."""
    return {ATTRIBUTION_PICTURE: pd.DataFrame({"url": [grey_uri(pixels, _PICTURE_TOP)]}),
            ATTRIBUTION_CELLS: attribution_frame(pixels, attribution, vmax)}


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
