"""Capsule figures: routing coefficients per 6 x 6 grid position and per primary capsule type, per iteration.

Pure functions (no Streamlit, no models): result arrays in, Altair charts out.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from app.charts.base import PAD, SEQUENTIAL, built_fast, cells


@built_fast
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


@built_fast
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
