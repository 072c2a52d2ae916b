"""Generative-model figures: the attribution matrix (generated tokens x input tokens), attention per head, a contrast.

Pure functions (no Streamlit, no models): result arrays in, Altair charts out. Token pieces are shown
as people read them (``Ġcat`` -> ``cat``; ``analyzers.tokens``); with ``words=True`` the columns of one
word are merged and their attributions summed (attributions add up, so every row keeps its total).
Labels carry their position ("3 · cat") so repeated tokens stay apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from analyzers.tokens import merge
from app.charts.base import DIVERGING, PAD, SEQUENTIAL, built_fast

CELL = 24  # px per token
MAX_WIDTH = 760  # px: longer inputs get narrower cells


def readable(piece: str) -> str:
    """One token piece as text: byte-level BPE and SentencePiece spaces dropped, bytes decoded; ␣ for a space."""
    text = merge([piece])[0].text
    if not text.strip() or set(text) <= set("ĠĊ▁"):
        text = piece.replace("Ġ", "␣").replace("▁", "␣").replace("Ċ", "⏎")
    return text or "␣"


def labels(pieces: Sequence[str], start: int = 0) -> list[str]:
    """'1 · the', '2 · cat', ...: unique readable labels in order."""
    return [f"{start + i + 1} · {readable(p)}" for i, p in enumerate(pieces)]


def word_groups(source: Sequence[str], prefix: Sequence[str]) -> tuple[list[str], list[list[int]], list[str]]:
    """Columns merged into words, the source's and the prefix's apart: (labels, column indices, pieces tooltip)."""
    names, groups, tips = [], [], []
    for offset, part in ((0, source), (len(source), prefix)):
        for w in merge(list(part)):
            names.append(f"{len(names) + 1} · {w.text or w.tooltip}")
            groups.append(list(range(offset + w.start, offset + w.end)))
            tips.append(w.tooltip)
    return names, groups, tips


def columns(source: Sequence[str], prefix: Sequence[str], words: bool) -> tuple[list[str], list[list[int]], list[str]]:
    """The matrix's columns: one per token, or one per word (see :func:`word_groups`)."""
    if words:
        return word_groups(source, prefix)
    pieces = list(source) + list(prefix)
    return labels(pieces), [[j] for j in range(len(pieces))], pieces


def matrix_frame(values: np.ndarray, generated: Sequence[str], source: Sequence[str], prefix: Sequence[str],
                 words: bool = False) -> pd.DataFrame:
    """(N, S + P) attributions as long rows: generated token, input column, part (source / prefix), value."""
    a = np.asarray(values, dtype=np.float64).reshape(len(generated), len(source) + len(prefix))
    cols, groups, tips = columns(source, prefix, words)
    merged = np.stack([a[:, g].sum(1) for g in groups], axis=1) if groups else np.zeros((len(generated), 0))
    rows = labels(generated)
    i, j = np.indices(merged.shape)
    first = np.array([g[0] for g in groups], dtype=int)
    return pd.DataFrame({"generated": np.asarray(rows, dtype=object)[i.ravel()],
                         "input": np.asarray(cols, dtype=object)[j.ravel()],
                         "part": np.where(first[j.ravel()] < len(source), "source", "prefix"),
                         "pieces": np.asarray(tips, dtype=object)[j.ravel()], "attribution": merged.ravel()})


def _cell(n: int) -> int:
    return max(12, min(CELL, MAX_WIDTH // max(1, n)))


@built_fast
def attribution_matrix_chart(values: np.ndarray, generated: Sequence[str], source: Sequence[str],
                             prefix: Sequence[str], title: str, words: bool = False) -> alt.LayerChart:
    """Rows: generated tokens in order; columns: the source then the prefix; one symmetric red-blue scale.

    A dark rule separates the source from the prefix; cells the model could not see are exactly 0.
    """
    df = matrix_frame(values, generated, source, prefix, words)
    cols = list(dict.fromkeys(df["input"])) if len(df) else []
    rows = labels(generated)
    m = float(np.nanmax(np.abs(df["attribution"]))) if len(df) else 1.0
    m = m or 1.0
    cell = _cell(len(cols))
    base = alt.Chart(df).encode(
        x=alt.X("input:N", sort=cols, title="input token (source, then prefix)",
                axis=alt.Axis(labelAngle=-50, orient="top", labelExpr="split(datum.label, ' · ')[1]", labelLimit=90,
                              labelOverlap=False)),
        y=alt.Y("generated:N", sort=rows, title="generated token",
                axis=alt.Axis(labelExpr="split(datum.label, ' · ')[1]", labelLimit=120,
                              labelOverlap=False)))
    rects = base.mark_rect(stroke="#ddd", strokeWidth=0.5).encode(
        color=alt.Color("attribution:Q", scale=alt.Scale(scheme=DIVERGING, domain=[-m, m], reverse=True),
                        legend=alt.Legend(orient="bottom", format=".2f", gradientLength=140)),
        tooltip=[alt.Tooltip("generated:N", title="step · generated"), alt.Tooltip("input:N", title="input"),
                 alt.Tooltip("part:N"), alt.Tooltip("pieces:N", title="token pieces"),
                 alt.Tooltip("attribution:Q", format=".4f")])
    layers = [rects]
    n_source = len(word_groups(source, ())[0]) if words else len(source)
    if 0 < n_source < len(cols):
        edge = pd.DataFrame({"input": [cols[n_source]]})
        layers.append(alt.Chart(edge).mark_rule(color="#333", strokeWidth=2, xOffset=-cell / 2).encode(
            x=alt.X("input:N", sort=cols)))
    return alt.layer(*layers).properties(width=cell * max(1, len(cols)), height=CELL * max(1, len(rows)),
                                         title=title).properties(autosize=PAD)


@built_fast
def attention_chart(weights: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str,
                    row_title: str = "query (attends)", col_title: str = "key (attended)") -> alt.Chart:
    """One head's attention (queries x keys), 0..1 on one scale; readable token labels."""
    a = np.asarray(weights, dtype=np.float64).reshape(len(rows), len(cols))
    rl, cl = labels(rows), labels(cols)
    i, j = np.indices(a.shape)
    df = pd.DataFrame({"query": np.asarray(rl, dtype=object)[i.ravel()], "key": np.asarray(cl, dtype=object)[j.ravel()],
                       "weight": a.ravel()})
    cell = _cell(max(len(cl), len(rl)))
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("key:N", sort=cl, title=col_title,
                axis=alt.Axis(labelAngle=-50, orient="top", labelExpr="split(datum.label, ' · ')[1]", labelLimit=90,
                              labelOverlap=False)),
        y=alt.Y("query:N", sort=rl, title=row_title, axis=alt.Axis(labelExpr="split(datum.label, ' · ')[1]",
                                                                   labelLimit=120)),
        color=alt.Color("weight:Q", scale=alt.Scale(scheme=SEQUENTIAL, domain=[0, 1]),
                        legend=alt.Legend(orient="bottom", format=".1f", gradientLength=120)),
        tooltip=[alt.Tooltip("query:N"), alt.Tooltip("key:N"), alt.Tooltip("weight:Q", format=".3f")],
    ).properties(width=cell * max(1, len(cl)), height=cell * max(1, len(rl)), title=title, autosize=PAD)


@built_fast
def contrast_chart(values: np.ndarray, pieces: Sequence[str], n_source: int, title: str) -> alt.Chart:
    """Each input token's share of logit(fact) - logit(foil): red pushes towards the fact, blue towards the foil."""
    v = np.asarray(values, dtype=np.float64)
    names = labels(pieces)
    df = pd.DataFrame({"input": names, "attribution": v, "part": ["source" if j < n_source else "prefix"
                                                                   for j in range(len(names))]})
    m = float(np.nanmax(np.abs(v))) if v.size else 1.0
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("input:N", sort=names, title=None, axis=alt.Axis(labelAngle=-50, labelLimit=90,
                                                                 labelExpr="split(datum.label, ' · ')[1]")),
        y=alt.Y("attribution:Q", title="share of logit(fact) - logit(foil)"),
        color=alt.Color("attribution:Q", scale=alt.Scale(scheme=DIVERGING, domain=[-(m or 1), m or 1], reverse=True),
                        legend=None),
        tooltip=["input:N", "part:N", alt.Tooltip("attribution:Q", format=".4f")],
    ).properties(width=max(240, min(MAX_WIDTH, 26 * len(names))), height=200, title=title, autosize=PAD)
