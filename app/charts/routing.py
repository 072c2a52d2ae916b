"""Mixture-of-experts figures: routing drawn over the digit, class x expert load, accuracy with an expert removed.

Pure functions (no Streamlit, no models): result arrays in, Altair charts out.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from app.charts.base import IMAGE_SIZE, PAD, SEQUENTIAL, built_fast, cells, picture_layer

EXPERT_SCHEME = "tableau10"  # one categorical colour per expert (10 distinct hues)

GRID = 7  # 4 x 4 patches of a 28 x 28 digit


def expert_scale(n_experts: int) -> alt.Scale:
    """The same colour for expert e in every chart of the page."""
    return alt.Scale(domain=[str(e) for e in range(n_experts)], scheme=EXPERT_SCHEME)


def routing_frame(experts: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
    """One row per patch (the CLS token left out): grid cell, first expert, its gate, and all k choices as text."""
    experts, weights = np.asarray(experts)[1:], np.asarray(weights, dtype=np.float64)[1:]  # (49, k)
    t = np.arange(len(experts))
    return pd.DataFrame({
        "row": t // GRID, "col": t % GRID, "token": t + 1, "expert": [str(e) for e in experts[:, 0]],
        "gate": weights[:, 0], "experts": [", ".join(f"{e} ({w:.2f})" for e, w in zip(es, ws))
                                            for es, ws in zip(experts, weights)]})


@built_fast
def routing_map_chart(pixels: np.ndarray, experts: np.ndarray, weights: np.ndarray, n_experts: int,
                      title: str = "", size: int = IMAGE_SIZE - 60) -> alt.LayerChart:
    """Each 4 x 4 patch coloured by its first-choice expert over the digit, opacity = that expert's gate weight.

    experts, weights: (T, k) of one MoE layer (token 0 is CLS, left out); the tooltip lists all k.
    """
    df = routing_frame(experts, weights)
    under = picture_layer(pixels, size, size, 0.9)
    over = cells(alt.Chart(df, title=title).mark_rect(stroke="white", strokeWidth=0.4), (GRID, GRID),
                 overlap=False).encode(
        color=alt.Color("expert:N", title="first-choice expert", scale=expert_scale(n_experts),
                        legend=alt.Legend(orient="bottom", columns=8, symbolType="square")),
        opacity=alt.Opacity("gate:Q", scale=alt.Scale(domain=[0, 1], range=[0.15, 0.8]), legend=None),
        tooltip=[alt.Tooltip("token:Q", title="token"), alt.Tooltip("row:O", title="patch row"),
                 alt.Tooltip("col:O", title="patch column"), alt.Tooltip("experts:N", title="experts (gate)"),
                 alt.Tooltip("gate:Q", title="first gate", format=".3f")])
    return alt.layer(under, over).properties(width=size, height=size, autosize=PAD)


@built_fast
def load_bars_chart(load: np.ndarray, title: str = "", value_name: str = "tokens") -> alt.Chart:
    """Load per expert (E,) as bars in the experts' colours."""
    E = len(load)
    df = pd.DataFrame({"expert": [str(e) for e in range(E)], value_name: np.asarray(load, dtype=np.float64)})
    return alt.Chart(df, title=title).mark_bar().encode(
        x=alt.X("expert:N", sort=None, axis=alt.Axis(labelAngle=0)), y=alt.Y(f"{value_name}:Q"),
        color=alt.Color("expert:N", scale=expert_scale(E), legend=None),
        tooltip=[alt.Tooltip("expert:N"), alt.Tooltip(f"{value_name}:Q", format=".4g")],
    ).properties(width=220, height=160, autosize=PAD)


@built_fast
def class_load_chart(class_load: np.ndarray, labels: Sequence[str], title: str = "", cell: int = 24) -> alt.LayerChart:
    """Class x expert share of token assignments (C, E), rows summing to 1, the share written in each cell."""
    C, E = np.shape(class_load)
    rows, cols = np.indices((C, E))
    df = pd.DataFrame({"class": [labels[i] for i in rows.ravel()], "expert": [str(e) for e in cols.ravel()],
                       "share": np.asarray(class_load, dtype=np.float64).ravel()})
    base = alt.Chart(df, title=title).encode(
        x=alt.X("expert:O", sort=[str(e) for e in range(E)], title="expert", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("class:O", sort=list(labels), title="true class"),
        tooltip=[alt.Tooltip("class:O"), alt.Tooltip("expert:O"), alt.Tooltip("share:Q", format=".1%")])
    heat = base.mark_rect().encode(color=alt.Color("share:Q", scale=alt.Scale(scheme=SEQUENTIAL, domain=[0, float(
        max(1e-9, df["share"].max()))]), legend=alt.Legend(orient="bottom", format=".0%", title="share of tokens")))
    text = base.mark_text(fontSize=9).encode(
        text=alt.Text("share:Q", format=".0%"),
        color=alt.condition(alt.datum.share > 0.6 * float(df["share"].max()), alt.value("black"), alt.value("white")))
    return alt.layer(heat, text).properties(width=cell * E, height=cell * C, autosize=PAD)


@built_fast
def ablation_chart(labels: Sequence[str], before: np.ndarray, after: np.ndarray, expert: int,
                   title: str = "") -> alt.Chart:
    """Held-out accuracy per class with all experts and with ``expert`` removed, side by side."""
    with_all, without = "all experts", f"without expert {expert}"
    df = pd.concat([pd.DataFrame({"class": list(labels), "accuracy": np.asarray(v, dtype=np.float64), "model": name})
                    for name, v in ((with_all, before), (without, after))], ignore_index=True)
    return alt.Chart(df, title=title).mark_bar().encode(
        x=alt.X("class:N", sort=list(labels), axis=alt.Axis(labelAngle=0), title="true class"),
        xOffset=alt.XOffset("model:N", sort=[with_all, without]),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", sort=[with_all, without], scale=alt.Scale(range=["#8fa8c8", "#d62728"]),
                        legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("class:N"), alt.Tooltip("model:N"), alt.Tooltip("accuracy:Q", format=".1%")],
    ).properties(width=360, height=200, autosize=PAD)


def token_routing_frame(tokens: Sequence[str], experts: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
    """One row per (layer, token): its first-choice expert and gate, and all its choices as text.

    ``experts`` / ``weights``: (L, T, k) for one sentence, T at least ``len(tokens)`` (real tokens first).
    """
    experts, weights = np.asarray(experts), np.asarray(weights, dtype=np.float64)
    rows = [{"layer": l, "position": t, "token": f"{t}: {tok}", "expert": str(int(experts[l, t, 0])),
             "gate": float(weights[l, t, 0]),
             "experts": ", ".join(f"{int(e)} ({w:.3f})" for e, w in zip(experts[l, t], weights[l, t]))}
            for l in range(experts.shape[0]) for t, tok in enumerate(tokens)]
    return pd.DataFrame(rows)


@built_fast
def token_routing_chart(tokens: Sequence[str], experts: np.ndarray, weights: np.ndarray, n_experts: int,
                        title: str = "", cell: int = 26) -> alt.LayerChart:
    """Tokens (rows) x MoE layers (columns), each cell coloured by its first-choice expert and labelled with it.

    The tooltip lists the token's k experts with their gate weights.
    """
    df = token_routing_frame(tokens, experts, weights)
    order = list(dict.fromkeys(df["token"]))
    base = alt.Chart(df, title=title).encode(
        x=alt.X("layer:O", title="MoE layer", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("token:N", sort=order, title=None))
    rect = base.mark_rect().encode(
        color=alt.Color("expert:N", scale=expert_scale(n_experts), title="first expert"),
        opacity=alt.Opacity("gate:Q", scale=alt.Scale(domain=[0, 1], range=[0.35, 1]), legend=None),
        tooltip=[alt.Tooltip("token:N"), alt.Tooltip("layer:O"), alt.Tooltip("experts:N", title="experts (gate)")])
    text = base.mark_text(fontSize=11).encode(text="expert:N")
    width = max(120, cell * int(df["layer"].nunique()))
    return (rect + text).properties(width=width, height=cell * len(order), autosize=PAD)
