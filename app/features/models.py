"""The Models page: the model cards of the zoo (metrics, size, parameters, training, paper).

Link: ``/models?model=capsnet`` (which card is open).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import streamlit as st

from analyzers import compatible
from app.charts.base import bar_chart, confusion_chart
from app.links.codec import Query, QueryReader
from app.runtime import evaluation
from app.runtime.models import parameter_count
from app.ui import messages
from app.ui.figures import show_built
from app.ui.pickers import method_label
from app.ui.results import computed
from model_zoo import REGISTRY, get_spec

DEFAULT_MODEL = "vit-dot"


# --------------------------------------------------------------------------- link


@dataclass(frozen=True)
class ModelsView:
    """The Models page: which model card is open. URL: ``?model=capsnet``."""

    PAGE: ClassVar[str] = "models"

    model: str = DEFAULT_MODEL
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[ModelsView, tuple[str, ...]]:
        r = QueryReader(query)
        model = r.choice("model", tuple(REGISTRY), DEFAULT_MODEL, "model")
        return cls(model), r.finish()

    def to_query(self) -> dict[str, str]:
        return {"model": self.model}


# --------------------------------------------------------------------------- cards


def model_table() -> Any:
    """One row per zoo model: family, task, parameters, headline metrics, checkpoint state."""
    rows = []
    for name, spec in REGISTRY.items():
        metrics = ", ".join(f"{k} {v}" for k, v in spec.metrics.items())
        rows.append({"model": name, "family": spec.family, "task": spec.task,
                     "parameters": f"{parameter_count(name):,}",
                     "metrics (held-out)": metrics or ("pretrained" if spec.recipe is None else "—"),
                     "checkpoint": "shipped" if spec.sha256 else ("pretrained package" if not spec.checkpoint
                                                                  else "not trained yet")})
    return pd.DataFrame(rows)


def _paper(text: str) -> None:
    words = text.rsplit(" ", 1)
    if len(words) == 2 and words[1].startswith("https://"):
        st.markdown(f"**Paper:** {messages.escape(words[0].rstrip(','))} — [{words[1]}]({words[1]})")
    else:
        st.markdown(f"**Paper:** {messages.escape(text)}")


def model_card(name: str) -> None:
    """The card of one model: description, paper, metrics, size, training and what analyses fit."""

    spec = get_spec(name)
    card = spec.card
    st.subheader(name)
    st.write(messages.escape(spec.description))
    _paper(spec.paper)
    metrics = dict(spec.metrics)
    cols = st.columns(max(2, len(metrics) + 2))
    for col, (k, v) in zip(cols, metrics.items()):
        col.metric(k, f"{v:.4g}" if isinstance(v, float) else str(v), help="on the held-out split")
    cols[len(metrics)].metric("Parameters", f"{parameter_count(name):,}")
    path = spec.checkpoint_path
    size = f"{path.stat().st_size / 1e6:.2f} MB" if path is not None and path.exists() else "—"
    cols[len(metrics) + 1].metric("Checkpoint", size)
    left, right = st.columns(2)
    with left:
        st.caption("Training")
        recipe = card.get("recipe") or (dataclasses.asdict(spec.recipe) if spec.recipe else {})
        lines = [f"{k}: {v}" for k, v in recipe.items()]
        if "seconds" in card:
            lines.append(f"trained: {card.get('epochs', '?')} epochs in {card['seconds']} s with torch {card.get('torch', '?')}")
        if "split" in card:
            lines.append(f"split: {card['split']}")
        st.text("\n".join(lines) or "pretrained (not trained here)")
        st.caption("Input")
        st.text(f"{spec.input.modality}, {spec.input.normalisation}")
    with right:
        st.caption("Architecture")
        st.json(card.get("config") or dataclasses.asdict(spec.config), expanded=True)
        st.caption("Analyses that fit")
        st.text(", ".join(method_label(a) for a in compatible(spec)))
    st.caption("Checkpoint sha256")
    st.code(spec.sha256 or "none (pretrained package or not trained yet)", language=None)
    if "classifier" in spec.capabilities and spec.recipe is not None:
        evaluation_panel(name)


def evaluation_panel(name: str) -> None:
    """Held-out accuracy with its interval, accuracy per class and the confusion matrix, measured here."""
    st.subheader("On the held-out split", divider="gray")
    result = computed("Running the model on the held-out digits…", lambda: evaluation.evaluate(name))
    if result is None:
        return
    low, high = result.interval()
    st.metric("Held-out accuracy", f"{result.accuracy:.1%}",
              help=f"{len(result.truth):,} digits of split {result.split}, measured now with the shipped checkpoint")
    st.caption(f"95 % interval {low:.1%} – {high:.1%} (Wilson score interval on {len(result.truth):,} digits): a "
               "difference between two models smaller than this is not evidence that one is better.")
    left, right = st.columns(2)
    with left:
        show_built(result, "per-class", "Accuracy per class", lambda: bar_chart(
            list(result.labels), result.per_class(), title="Accuracy per class (recall)", value_name="accuracy"))
    with right:
        show_built(result, "confusion", "Confusion matrix", lambda: confusion_chart(
            result.confusion(), result.labels, title="Confusion matrix (off-diagonal: errors)"))
