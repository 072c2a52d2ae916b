"""The Compare page: one input, 2-4 columns (a model, a method and its params each), compared fairly.

The columns share one colour scale only when their values are in the same units (see
:mod:`app.features.compare_fairness`); otherwise each is normalised by its own largest |value|, and
the page says which. Under the columns, how much each pair agrees: Spearman ρ and top-k overlap.

Link: ``/compare?sample=3&columns=vit-dot:integrated_gradients,capsnet:integrated_gradients``, with
each column's params that differ from its method's defaults under ``col<i>.`` (``col0.n_steps=32``)
and ``scale=shared`` or ``scale=per_column`` when the person overrides the automatic colour scale.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import streamlit as st

from app.features.attribution import DEFAULT_TEXT, attribution_heatmap
from app.features.compare_fairness import SCALE_LABELS, SCALES, agreement_note, agreement_table, scale_choice
from app.features.compare_text import is_text, modality_problem
from app.links.catalogue import (
    attribution_methods, attribution_models, default_params, params_class, target_labels,
)
from app.links.codec import (
    InputRef, Params, Query, QueryReader, canonical, params_object, quote, read_params, read_text, saved_link,
    write_params,
)
from app.runtime import compute
from app.ui import messages, session
from app.ui.pickers import method_label
from app.ui.results import computed
from app.ui.widgets import params_form


# --------------------------------------------------------------------------- link


@dataclass(frozen=True)
class Column:
    """One column of the Compare page: a model, an attribution method and its params (default: the method's)."""

    model: str
    method: str
    params: Params = ()  # canonical; empty = the method's defaults
    valid: bool = field(default=True, compare=False, repr=False)  # False while its form holds a bad value

    def __post_init__(self) -> None:
        if not self.params:  # canonical form: every field
            object.__setattr__(self, "params", default_params(self.method, self.model))

    def text(self) -> str:
        return f"{self.model}:{self.method}"

    def title(self) -> str:
        return f"{method_label(self.method)} · {self.model}"

    def params_object(self) -> Any:
        """The validated params dataclass of this column's method."""
        return params_object(params_class(self.method, self.model), self.params)


DEFAULT_COLUMNS = (Column("vit-dot", "integrated_gradients"), Column("vit-dot", "saliency"),
                   Column("vit-dot", "occlusion"))

MIN_COLUMNS, MAX_COLUMNS = 2, 4


def _column_params(r: QueryReader, i: int, model: str, method: str) -> Params:
    """Column ``i``'s params from ``col<i>.<field>`` keys; each bad value is reported and left at its default."""
    before = len(r.problems)
    params = read_params(r, params_class(method, model), f"col{i}")
    values = dict(params)
    labels = target_labels(model)
    if "target" in values and labels and not -1 <= int(values["target"]) < len(labels):
        r.problems.append(f"target {values['target']} is out of range for {model}: it has {len(labels)} outputs "
                          f"(0 to {len(labels) - 1}); use -1 for the predicted one. Using the predicted one.")
        params = tuple((k, "-1" if k == "target" else v) for k, v in params)
    r.problems[before:] = [f"Column {i + 1} ({model}:{method}): {p}" for p in r.problems[before:]]
    return params


@dataclass(frozen=True)
class CompareView:
    """The Compare page: one input, 2-4 columns of model:method with their params, and the colour scale.

    URL: ``?sample=3&columns=vit-dot:integrated_gradients,capsnet:integrated_gradients`` with
    ``col<i>.<field>`` for params that differ from the defaults and ``scale=shared|per_column``.
    """

    PAGE: ClassVar[str] = "compare"

    columns: tuple[Column, ...] = DEFAULT_COLUMNS
    input: InputRef = InputRef()
    scale: str = "auto"  # one of SCALES: "auto" decides by the columns' units
    link: str | None = None
    text: str = DEFAULT_TEXT  # the sentence when the columns are text classifiers (``?text=...``)

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[CompareView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        ref = InputRef.read(r, uploads)
        columns = cls._read_columns(r)
        columns = tuple(Column(c.model, c.method, _column_params(r, i, c.model, c.method))
                        for i, c in enumerate(columns))
        scale = r.choice("scale", SCALES, "auto", "colour scale")
        text = read_text(r, "text", DEFAULT_TEXT, "Text") if is_text([c.model for c in columns]) else DEFAULT_TEXT
        return cls(columns, ref, scale, text=text), r.finish()

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
            if model not in compare_models() or method not in attribution_methods(model):
                r.problems.append(f"Column {quote(part)} is not model:method with a known pair, e.g. "
                                  "vit-dot:integrated_gradients. Showing the default columns.")
                return DEFAULT_COLUMNS
            columns.append(Column(model, method))
        mixed = modality_problem([c.model for c in columns])
        if mixed:
            r.problems.append(f"{mixed} Showing the default columns.")
            return DEFAULT_COLUMNS
        return tuple(columns)

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        shown = {"text": self.text} if is_text([c.model for c in self.columns]) else self.input.to_query()
        query = {**shown, "columns": ",".join(c.text() for c in self.columns)}
        for i, c in enumerate(self.columns):
            query.update(write_params(c.params, default_params(c.method, c.model), f"col{i}"))
        return {**query, **({"scale": self.scale} if self.scale != "auto" else {})}


# --------------------------------------------------------------------------- the user's image models beside the zoo's


def compare_models() -> tuple[str, ...]:
    """The models an attribution fits: image models (zoo and user), then text classifiers (one kind per comparison)."""
    return attribution_models()  # one modality per comparison: see compare_text.modality_problem


def pixels_for(model: str, pixels: np.ndarray) -> np.ndarray:
    """The digit as ``model`` reads it: as it is for the zoo's 28 x 28 models; for a user's image model, the digit
    as an 8-bit picture prepared by the model's own preprocessing (its size and channels), (1, C, H, W)."""
    from PIL import Image

    from app.runtime.compute import spec_of
    from app.runtime.inputs import uses_model_preprocessing
    from app.runtime.models import loaded_model

    if not uses_model_preprocessing(spec_of(model)):
        return pixels
    picture = Image.fromarray((np.clip(np.asarray(pixels, dtype=np.float32), 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(loaded_model(model).model.preprocess(picture.convert("RGB")), dtype=np.float32)[None]


def on_digit_grid(attribution: np.ndarray) -> np.ndarray:
    """An attribution (C, H, W) summed over channels and area-resampled onto the 28 x 28 grid the columns share
    (the agreement measures compare maps cell by cell); the zoo's (1, 28, 28) maps as they are."""
    from PIL import Image

    a = np.asarray(attribution, dtype=np.float32)
    a = a.sum(0) if a.ndim == 3 else a
    if a.shape == (28, 28):
        return a
    scale = a.shape[0] * a.shape[1] / (28 * 28)  # resampling averages: scaled back to a sum per cell
    return np.asarray(Image.fromarray(a, mode="F").resize((28, 28), Image.Resampling.BOX)) * scale


# --------------------------------------------------------------------------- settings


def column_picker(keys: session.WidgetKeys, i: int, prior: Column, host: Any = st) -> Column:
    """Model, method and params of compare column ``i``, seeded from ``prior``."""
    models = compare_models()
    model = host.selectbox(f"Model {i + 1}", models, key=keys.key(f"col{i}.model", prior.model, models))
    methods = attribution_methods(model)
    method = host.selectbox(f"Method {i + 1}", methods, key=keys.key(f"col{i}.method", prior.method, methods),
                            format_func=method_label)
    cls = params_class(method, model)
    current = prior.params_object() if params_class(prior.method, prior.model) is cls and prior.method == method else cls()
    with host.expander(f"Parameters of column {i + 1}") as place:
        params = params_form(cls, current, keys, prefix=f"col{i}.{method}", labels=target_labels(model),
                             host=place)
    return Column(model, method, canonical(params or current), valid=params is not None)


def scale_picker(keys: session.WidgetKeys, prior: str, host: Any = st) -> str:
    """The "Colour scale" setting: automatic (shared only for columns in the same units), shared, per column."""
    return host.radio("Colour scale", SCALES, horizontal=True, format_func=SCALE_LABELS.get,
                      key=keys.key("scale", prior, SCALES),
                      help="Automatic: one scale when every column is in the same units (say Integrated Gradients "
                           "on two classifiers), else each column scaled by its own largest |value|.")


# --------------------------------------------------------------------------- results


def compare_results(columns: Sequence[Column], pixels: np.ndarray) -> dict[str, Any] | None:
    """Attributions for every column (each with its own params), or None if one failed."""
    results = {}
    progress = st.progress(0.0, text="Computing the columns…")
    for i, c in enumerate(columns):
        params = c.params_object()
        seen = pixels_for(c.model, pixels)
        result = computed(f"{method_label(c.method)} on {c.model}…",
                          lambda c=c, params=params, seen=seen: compute.run(c.method, c.model, params, seen))
        if result is None:
            progress.empty()
            return None
        results[f"col{i}"] = result
        progress.progress((i + 1) / len(columns), text=f"{i + 1} of {len(columns)} columns")
    progress.empty()
    return results


def compare_panels(view: CompareView, results: dict[str, Any]) -> None:
    """The colour scale in words, the columns on it, and the agreement of every pair of columns."""
    choice = scale_choice([(c.model, c.method, c.params_object()) for c in view.columns], view.scale)
    maps = [on_digit_grid(results[f"col{i}"].attributions[0]) for i in range(len(view.columns))]
    ranges = choice.ranges(maps)
    titles = [f"({i + 1}) {c.title()}" for i, c in enumerate(view.columns)]
    st.caption(messages.escape(choice.sentence(titles, ranges)))
    for i, (place, column) in enumerate(zip(st.columns(len(view.columns)), view.columns)):
        with place:
            compare_column(results[f"col{i}"], column, ranges[i], key=f"col{i}")
    st.subheader("Agreement between columns")
    st.caption(messages.escape(agreement_note(maps[0].size)))
    table = agreement_table(maps, titles)
    st.table(table.style.format({c: "{:.3f}" for c in table.columns[1:]}, na_rep="n/a"))


def compare_column(result: Any, column: Column, vmax: float, key: str) -> None:
    """One compare column: heatmap on its colour scale, prediction and completeness in brief."""
    attribution_heatmap(result, vmax=vmax, title=column.title(), key=key)
    pred = int(result.predictions[0])
    st.metric("Prediction", result.labels[pred] if 0 <= pred < len(result.labels) else "n/a")
    rel = float(result.rel_error[0])
    st.metric("Completeness error", "n/a" if not np.isfinite(rel) else f"{rel:.2%}",
              help="|Σ attributions − (F(x) − F(baseline))| / |F(x) − F(baseline)|; flagged above 5%")
    if bool(result.flagged[0]):
        messages.warning(result.advice[0] or "Completeness is off by more than 5%.")
