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
