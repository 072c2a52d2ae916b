"""Charts of a whole-dataset analysis: per-class mean |IG| maps, AUC distributions per method, slices.

Pure Altair from numpy arrays (no streamlit); the confusion matrix is :func:`app.charts.base.confusion_chart`.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from app.charts.base import CANVAS, PAD, built_fast


@built_fast
def class_maps_chart(maps: np.ndarray, labels: Sequence[str], counts: np.ndarray, size: int = 92) -> alt.Chart:
    """Mean |IG| per class (K, 28, 28), one small heatmap per class with its own scale (``columns`` wrap)."""
    frames = []
    for k, lab in enumerate(labels):
        if not counts[k]:
            continue
        a = np.asarray(maps[k], dtype=np.float64).reshape(28, 28)
        rows, cols = np.indices(a.shape)
        top = a.max() if a.max() > 0 else 1.0
        frames.append(pd.DataFrame({"class": f"{lab} (n={int(counts[k])})", "row": rows.ravel(), "col": cols.ravel(),
                                    "mean |IG|": a.ravel(), "share of max": a.ravel() / top}))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        {"class": [], "row": [], "col": [], "mean |IG|": [], "share of max": []})
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("col:O", axis=None), y=alt.Y("row:O", axis=None),
        color=alt.Color("share of max:Q", scale=alt.Scale(scheme="inferno", domain=[0, 1]),
                        legend=alt.Legend(orient="bottom", title="mean |IG| / class max")),
        tooltip=[alt.Tooltip("class:N"), alt.Tooltip("row:O"), alt.Tooltip("col:O"),
                 alt.Tooltip("mean |IG|:Q", format=".4g")],
    ).properties(width=size, height=size).facet(
        facet=alt.Facet("class:N", title=None, sort=None), columns=5,
    ).properties(usermeta=CANVAS)


@built_fast
def auc_distributions_chart(deletion: np.ndarray, insertion: np.ndarray, methods: Sequence[str],
                            ranked: Sequence[str], random_deletion: float | None = None) -> alt.HConcatChart:
    """Per-example deletion and insertion AUC (n, M) as box plots per method, best-ranked method first."""
    rows = []
    for m, name in enumerate(methods):
        for kind, values in (("deletion", deletion[:, m]), ("insertion", insertion[:, m])):
            rows.append(pd.DataFrame({"method": name, "curve": kind, "AUC": np.asarray(values, dtype=np.float64)}))
    df = pd.concat(rows, ignore_index=True)

    def box(kind: str, better: str) -> alt.Chart:
        return alt.Chart(df[df["curve"] == kind], title=f"{kind.capitalize()} AUC ({better} is better)").mark_boxplot(
            extent="min-max", size=28).encode(
            x=alt.X("method:N", sort=list(ranked), title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("AUC:Q", title=f"{kind} AUC per example"),
            color=alt.Color("method:N", sort=list(ranked), legend=None),
        ).properties(width=80 * max(1, len(methods)), height=220)

    left = box("deletion", "lower")
    if random_deletion is not None and np.isfinite(random_deletion):
        rule = alt.Chart(pd.DataFrame({"AUC": [random_deletion], "what": ["random ordering"]})).mark_rule(
            strokeDash=[4, 3], color="#555").encode(y="AUC:Q", tooltip=["what:N", alt.Tooltip("AUC:Q", format=".4f")])
        left = alt.layer(left, rule)
    return alt.hconcat(left, box("insertion", "higher")).properties(autosize=PAD)


@built_fast
def slice_chart(names: Sequence[str], accuracy: Sequence[float], counts: Sequence[int], title: str,
                x_title: str = "slice") -> alt.Chart:
    """Accuracy per slice as bars, the slice's size in the tooltip and under each bar."""
    df = pd.DataFrame({"slice": [str(n) for n in names], "accuracy": np.asarray(accuracy, dtype=np.float64),
                       "examples": np.asarray(counts, dtype=np.int64)})
    base = alt.Chart(df, title=title).encode(x=alt.X("slice:N", sort=None, title=x_title,
                                                     axis=alt.Axis(labelAngle=0)))
    bars = base.mark_bar(color="#8fa8c8").encode(
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])),
        tooltip=[alt.Tooltip("slice:N"), alt.Tooltip("accuracy:Q", format=".3f"), alt.Tooltip("examples:Q")])
    text = base.mark_text(dy=-6, fontSize=10).encode(y="accuracy:Q", text=alt.Text("examples:Q", format="d"))
    return alt.layer(bars, text).properties(width=max(160, 28 * len(df)), height=180, autosize=PAD)


@built_fast
def class_words_chart(rows: Sequence[Sequence[tuple[str, float, int]]], labels: Sequence[str]) -> alt.HConcatChart:
    """Text: per class the words with the largest mean attribution (word, mean, count), one bar chart each."""
    charts = []
    for k, lab in enumerate(labels):
        if not rows[k]:
            continue
        df = pd.DataFrame({"word": [r[0] for r in rows[k]], "mean attribution": [float(r[1]) for r in rows[k]],
                           "count": [int(r[2]) for r in rows[k]]})
        base = alt.Chart(df, title=f"toward {lab}").encode(
            y=alt.Y("word:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False)),
            x=alt.X("mean attribution:Q", title="mean IG"))
        bars = base.mark_bar(color="#c8798f" if k % 2 else "#8fa8c8").encode(
            tooltip=["word:N", alt.Tooltip("mean attribution:Q", format=".4f"), "count:Q"])
        text = base.mark_text(align="left", dx=3, fontSize=10).encode(text=alt.Text("count:Q", format="d"))
        charts.append(alt.layer(bars, text).properties(width=220, height=20 * len(df)))
    return alt.hconcat(*charts).properties(autosize=PAD)
