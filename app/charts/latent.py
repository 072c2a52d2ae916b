"""Latent-space figures: the held-out set in latent space, traversals with labelled rows, and KL per dimension.

Pure functions (no Streamlit, no models): result arrays in, Altair charts out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from app.charts.base import PAD, built_fast
from app.charts.images import digit_uri

CATEGORY = "tableau10"  # digit classes

POINT, BRUSH = "point", "brush"  # names of the scatter's selection parameters


def scatter_frame(coords: np.ndarray, labels: np.ndarray, uris: Sequence[str] | None = None) -> pd.DataFrame:
    """Projected points as rows (index, x, y, label[, image])."""
    df = pd.DataFrame({"index": np.arange(len(coords)), "x": np.asarray(coords[:, 0], dtype=np.float64),
                       "y": np.asarray(coords[:, 1], dtype=np.float64),
                       "label": [str(v) if v >= 0 else "?" for v in np.asarray(labels)]})
    if uris is not None:
        df["image"] = list(uris)
    return df


@built_fast
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


@built_fast
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


def traversal_frame(images: np.ndarray, offsets: np.ndarray, row_labels: Sequence[str],
                    kl: np.ndarray | None = None) -> pd.DataFrame:
    """A traversal's cells as rows (dim, row, step, offset[, kl]): one per decoded digit of (D, S, 28, 28)."""
    D, S = np.shape(images)[:2]
    df = pd.DataFrame({"dim": np.repeat(np.arange(D), S), "row": np.repeat(list(row_labels), S),
                       "step": np.tile(np.arange(S), D), "offset": np.tile(np.asarray(offsets, dtype=np.float64), D)})
    if kl is not None:
        df["kl"] = np.repeat(np.asarray(kl, dtype=np.float64), S)
    return df


@built_fast
def traversal_chart(images: np.ndarray, offsets: np.ndarray, row_labels: Sequence[str],
                    kl: np.ndarray | None = None, cell: int = 36, title: str = "") -> alt.Chart:
    """Each latent dimension swept, a row of decoded digits (D, S, 28, 28) per dimension, labelled on the left.

    ``row_labels`` name the rows (e.g. ``"z3 · KL 1.72"``), top to bottom; the columns are the
    ``offsets`` (prior standard deviations). Every digit's tooltip says its dimension, offset and KL.
    """
    df = traversal_frame(images, offsets, row_labels, kl)
    df["image"] = [digit_uri(d, scale=1) for d in np.asarray(images).reshape(-1, 28, 28)]
    steps = [offset_label(o) for o in np.asarray(offsets, dtype=np.float64)]
    df["moved"] = [steps[i] for i in df["step"]]
    tooltip = [alt.Tooltip("dim:O", title="dimension"), alt.Tooltip("moved:N", title="offset (prior sd)")]
    if kl is not None:
        tooltip.append(alt.Tooltip("kl:Q", title="KL (nats)", format=".3f"))
    return alt.Chart(df, title=title).mark_image(width=cell, height=cell, align="center", baseline="middle",
                                                 aspect=False, smooth=False).encode(
        x=alt.X("step:O", title="offset from the posterior mean (prior standard deviations)",
                axis=alt.Axis(labelAngle=0, orient="top", ticks=False, domain=False,
                              labelExpr=f"{json.dumps(steps)}[datum.value]"),
                scale=alt.Scale(type="point", padding=0.5)),
        y=alt.Y("row:N", sort=list(row_labels), title=None,
                axis=alt.Axis(ticks=False, domain=False, labelFontSize=12, labelLimit=220, labelPadding=6),
                scale=alt.Scale(type="point", padding=0.5)),
        url="image:N", tooltip=tooltip,
    ).properties(width=alt.Step(cell + 2), height=alt.Step(cell + 2), autosize=PAD)


def offset_label(offset: float) -> str:
    """An offset as a column label: signed, three significant digits, no trailing zeros (``-2.25``, ``0``, ``+3``)."""
    text = f"{offset:+.3g}"
    return "0" if float(text) == 0 else text
