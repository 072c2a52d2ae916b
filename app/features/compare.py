"""The Compare page: one input, 2-4 columns (a model and a method each) on one colour scale.

Link: ``/compare?sample=3&columns=vit-dot:integrated_gradients,capsnet:integrated_gradients``;
each column runs its method with default params, so the columns differ in what they name only.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import streamlit as st

from app.features.attribution import attribution_heatmap
from app.links.catalogue import attribution_methods, attribution_models, params_class
from app.links.codec import InputRef, Query, QueryReader, quote, saved_link
from app.runtime import compute
from app.ui import messages, session
from app.ui.pickers import method_label
from app.ui.results import computed


# --------------------------------------------------------------------------- link


@dataclass(frozen=True)
class Column:
    """One column of the Compare page: a model and an attribution method (default params)."""

    model: str
    method: str

    def text(self) -> str:
        return f"{self.model}:{self.method}"


DEFAULT_COLUMNS = (Column("vit-dot", "integrated_gradients"), Column("vit-dot", "saliency"),
                   Column("vit-dot", "occlusion"))

MIN_COLUMNS, MAX_COLUMNS = 2, 4


@dataclass(frozen=True)
class CompareView:
    """The Compare page: one input, 2-4 columns of model:method, each with default params.

    URL: ``?sample=3&columns=vit-dot:integrated_gradients,capsnet:integrated_gradients``.
    """

    PAGE: ClassVar[str] = "compare"

    columns: tuple[Column, ...] = DEFAULT_COLUMNS
    input: InputRef = InputRef()
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[CompareView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        ref = InputRef.read(r, uploads)
        columns = cls._read_columns(r)
        return cls(columns, ref), r.finish()

    @staticmethod
    def _read_columns(r: QueryReader) -> tuple[Column, ...]:
        raw = r.raw("columns")
        if raw is None:
            return DEFAULT_COLUMNS
        parts = [p for p in raw.split(",") if p.strip()]
        if not MIN_COLUMNS <= len(parts) <= MAX_COLUMNS:
            r.problems.append(f"Compare shows {MIN_COLUMNS} to {MAX_COLUMNS} columns; the link has {len(parts)}. "
                              "Showing the default columns.")
            return DEFAULT_COLUMNS
        columns = []
        for part in parts:
            model, _, method = part.strip().partition(":")
            if model not in attribution_models() or method not in attribution_methods(model):
                r.problems.append(f"Column {quote(part)} is not model:method with a known pair, e.g. "
                                  "vit-dot:integrated_gradients. Showing the default columns.")
                return DEFAULT_COLUMNS
            columns.append(Column(model, method))
        return tuple(columns)

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        return {**self.input.to_query(), "columns": ",".join(c.text() for c in self.columns)}


# --------------------------------------------------------------------------- columns


def column_picker(keys: session.WidgetKeys, i: int, prior: Column, host: Any = st) -> Column:
    """Model and method of compare column ``i``, seeded from ``prior``."""
    models = attribution_models()
    model = host.selectbox(f"Model {i + 1}", models, key=keys.key(f"col{i}.model", prior.model, models))
    methods = attribution_methods(model)
    method = host.selectbox(f"Method {i + 1}", methods, key=keys.key(f"col{i}.method", prior.method, methods),
                            format_func=method_label)
    return Column(model, method)


def compare_results(columns: Sequence[Column], pixels: np.ndarray) -> dict[str, Any] | None:
    """Attributions for every column (default params of each method), or None if one failed."""
    results = {}
    progress = st.progress(0.0, text="Computing the columns…")
    for i, c in enumerate(columns):
        params = params_class(c.method)()
        result = computed(f"{method_label(c.method)} on {c.model}…",
                          lambda: compute.run(c.method, c.model, params, pixels))
        if result is None:
            progress.empty()
            return None
        results[f"col{i}"] = result
        progress.progress((i + 1) / len(columns), text=f"{i + 1} of {len(columns)} columns")
    progress.empty()
    return results


def compare_column(result: Any, column: Column, vmax: float, key: str) -> None:
    """One compare column: heatmap on the shared scale, prediction and completeness in brief."""
    attribution_heatmap(result, vmax=vmax, title=f"{method_label(column.method)} · {column.model}", key=key)
    pred = int(result.predictions[0])
    st.metric("Prediction", result.labels[pred] if 0 <= pred < len(result.labels) else "n/a")
    rel = float(result.rel_error[0])
    st.metric("Completeness error", "n/a" if not np.isfinite(rel) else f"{rel:.2%}",
              help="|Σ attributions − (F(x) − F(baseline))| / |F(x) − F(baseline)|; flagged above 5%")
    if bool(result.flagged[0]):
        messages.warning(result.advice[0] or "Completeness is off by more than 5%.")
