"""Sequence-model figures: alignment matrices (output tokens x input characters), attribution rows, entropy per step.

Pure functions (no Streamlit, no models): result arrays in, Altair charts out. Rows are output
tokens top to bottom in decoding order, columns the input characters left to right; a token's
label carries its step ("3 · K") so repeated tokens stay apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from app.charts.base import DIVERGING, PAD, SEQUENTIAL, built_fast

CELL = 26  # px per character / token


def step_labels(tokens: Sequence[str]) -> list[str]:
    """'1 · K', '2 · AE', ...: unique row names in decoding order."""
    return [f"{i + 1} · {t}" for i, t in enumerate(tokens)]


def char_labels(chars: Sequence[str]) -> list[str]:
    """'1 · c', '2 · a', ...: unique column names in reading order."""
    return [f"{j + 1} · {c}" for j, c in enumerate(chars)]


def matrix_frame(values: np.ndarray, tokens: Sequence[str], chars: Sequence[str], name: str) -> pd.DataFrame:
    """(U, T) values as long rows: step, token, position, character, value."""
    a = np.asarray(values, dtype=np.float64).reshape(len(tokens), len(chars))
    i, j = np.indices(a.shape)
    return pd.DataFrame({"output": np.asarray(step_labels(tokens), dtype=object)[i.ravel()],
                         "input": np.asarray(char_labels(chars), dtype=object)[j.ravel()],
                         "step": i.ravel() + 1, "position": j.ravel() + 1, name: a.ravel()})


@built_fast
def alignment_chart(values: np.ndarray, tokens: Sequence[str], chars: Sequence[str], title: str,
                    highlight: int | None = None, cell: int = CELL) -> alt.LayerChart:
    """The alignment matrix: weight of input character j when emitting token i, 0..1 on one scale.

    ``highlight`` (a step, 0-based) outlines that row, for stepping through decoding.
    """
    df = matrix_frame(values, tokens, chars, "weight")
    rows, cols = step_labels(tokens), char_labels(chars)
    base = alt.Chart(df).encode(
        x=alt.X("input:N", sort=cols, title="input character", axis=alt.Axis(labelAngle=0, orient="top",
                                                                               labelExpr="split(datum.label, ' · ')[1]")),
        y=alt.Y("output:N", sort=rows, title="output token"))
    rects = base.mark_rect(stroke="#ddd", strokeWidth=0.5).encode(
        color=alt.Color("weight:Q", title="weight", scale=alt.Scale(scheme=SEQUENTIAL, domain=[0, 1]),
                        legend=alt.Legend(orient="bottom", format=".1f", gradientLength=120)),
        tooltip=[alt.Tooltip("output:N", title="step · token"), alt.Tooltip("input:N", title="position · character"),
                 alt.Tooltip("weight:Q", format=".3f")])
    layers = [rects]
    if highlight is not None and 0 <= highlight < len(tokens):
        row = pd.DataFrame({"output": [rows[highlight]]})
        layers.append(alt.Chart(row).mark_rect(fill=None, stroke="#e4572e", strokeWidth=2.5).encode(
            y=alt.Y("output:N", sort=rows)))
    return alt.layer(*layers).properties(
        width=cell * max(1, len(chars)), height=cell * max(1, len(tokens)), title=title).properties(autosize=PAD)


@built_fast
def attribution_chart(values: np.ndarray, tokens: Sequence[str], chars: Sequence[str], title: str,
                      vmax: float | None = None, cell: int = CELL) -> alt.Chart:
    """Per output token (row), its attribution over the input characters, on one symmetric red-blue scale."""
    df = matrix_frame(values, tokens, chars, "attribution")
    m = float(vmax or np.nanmax(np.abs(values)) or 1.0) if np.size(values) else 1.0
    rows, cols = step_labels(tokens), char_labels(chars)
    return alt.Chart(df).mark_rect(stroke="#ddd", strokeWidth=0.5).encode(
        x=alt.X("input:N", sort=cols, title="input character", axis=alt.Axis(labelAngle=0, orient="top",
                                                                              labelExpr="split(datum.label, ' · ')[1]")),
        y=alt.Y("output:N", sort=rows, title="output token"),
        color=alt.Color("attribution:Q", scale=alt.Scale(scheme=DIVERGING, domain=[-m, m], reverse=True),
                        legend=alt.Legend(orient="bottom", format=".2f", gradientLength=120)),
        tooltip=[alt.Tooltip("output:N", title="step · token"), alt.Tooltip("input:N", title="position · character"),
                 alt.Tooltip("attribution:Q", format=".4f")],
    ).properties(width=cell * max(1, len(chars)), height=cell * max(1, len(tokens)), title=title,
                 autosize=PAD)


@built_fast
def entropy_chart(series: dict[str, np.ndarray], tokens: dict[str, Sequence[str]], title: str,
                  width: int = 300, height: int = 160) -> alt.Chart:
    """Attention entropy (nats) per decoding step, one line per model."""
    frames = [pd.DataFrame({"model": name, "step": np.arange(1, len(v) + 1), "entropy": np.asarray(v, float),
                            "token": list(tokens[name])}) for name, v in series.items()]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "step", "entropy", "token"])
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("step:Q", title="decoding step", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("entropy:Q", title="entropy (nats)"),
        color=alt.Color("model:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=["model:N", "step:Q", "token:N", alt.Tooltip("entropy:Q", format=".3f")],
    ).properties(width=width, height=height, title=title, autosize=PAD)


@built_fast
def candidates_chart(tokens: Sequence[str], probs: Sequence[float], title: str, width: int = 260) -> alt.Chart:
    """The likeliest next tokens at one decoding step and their probabilities (the chosen one first)."""
    df = pd.DataFrame({"token": list(tokens), "probability": np.asarray(probs, float),
                       "chosen": [i == 0 for i in range(len(tokens))]})
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%")),
        y=alt.Y("token:N", sort=list(tokens), title=None),
        color=alt.condition("datum.chosen", alt.value("#e4572e"), alt.value("#9aa5b1")),
        tooltip=["token:N", alt.Tooltip("probability:Q", format=".3f")],
    ).properties(width=width, height=18 * max(1, len(tokens)), title=title, autosize=PAD)
