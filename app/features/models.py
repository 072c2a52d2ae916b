"""The Models page: the model cards of the zoo (metrics, size, parameters, training, paper), of the user's own
Hugging Face folders (architecture, task, labels, parameters, weights sha256, README, source path) and of plugin
models, plus the folders and plugins that were refused and why.

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
from model_zoo import all_models, get_spec, model_problems

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
        model = r.choice("model", tuple(all_models()), DEFAULT_MODEL, "model")
        return cls(model), r.finish()

    def to_query(self) -> dict[str, str]:
        return {"model": self.model}


# --------------------------------------------------------------------------- cards


def _parameters(name: str) -> str:
    """The parameter count as text; "—" when the model cannot be built (a plugin's builder fails, weights missing)."""
    try:
        return f"{parameter_count(name):,}"
    except Exception:  # noqa: BLE001 - one broken model must not take the page down
        return "—"


def model_table() -> Any:
    """One row per model (the zoo, the user's folders, plugins): source, family, task, parameters, metrics, weights."""
    rows = []
    for name, spec in all_models().items():
        metrics = ", ".join(f"{k} {v}" for k, v in spec.metrics.items())
        if spec.source == "folder":
            rows.append({"model": name, "source": "your folder", "family": spec.family, "task": spec.task,
                         "parameters": _parameters(name), "metrics (held-out)": "—",
                         "checkpoint": f"sha256 {spec.sha256[:12]}…"})
            continue
        rows.append({"model": name, "source": "plugin" if spec.source == "plugin" else "zoo",
                     "family": spec.family, "task": spec.task,
                     "parameters": _parameters(name),
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
    if spec.source == "folder":
        return folder_card(name)
    card = spec.card
    st.subheader(name)
    if spec.source == "plugin":
        st.caption(f"From plugin {messages.escape(spec.extra.get('plugin', '?'))}: code the server's operator installed")
    st.write(messages.escape(spec.description))
    _paper(spec.paper)
    metrics = dict(spec.metrics)
    cols = st.columns(max(2, len(metrics) + 2))
    for col, (k, v) in zip(cols, metrics.items()):
        col.metric(k, f"{v:.4g}" if isinstance(v, float) else str(v), help="on the held-out split")
    cols[len(metrics)].metric("Parameters", _parameters(name))
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
    if ("classifier" in spec.capabilities and spec.input.modality == "image"
            and (spec.recipe is not None or _reads_heldout_digits(spec))):
        evaluation_panel(name)


def _reads_heldout_digits(spec) -> bool:
    """A plugin digit classifier can be measured on the zoo's held-out digits too."""
    return spec.source == "plugin" and spec.input.shape == (1, 28, 28) and len(spec.input.labels) == 10


README_SHOWN = 6_000  # characters of a folder's README.md drawn on its card


def folder_card(name: str) -> None:
    """The card of a user's Hugging Face folder: what config.json says, its size and weights, its README."""
    spec = get_spec(name)
    extra = spec.extra
    st.subheader(name)
    st.caption(f"Your model folder · {messages.escape(spec.task)} · {messages.escape(extra.get('path', ''))}")
    cols = st.columns(3)
    cols[0].metric("Parameters", f"{int(extra.get('parameters', 0)):,}")
    cols[1].metric("Weights", f"{extra.get('weights_bytes', 0) / 1e6:.2f} MB", help="safetensors files of the folder")
    cols[2].metric("Classes" if spec.input.labels else "Input", str(len(spec.input.labels)) if spec.input.labels
                   else spec.input.modality)
    left, right = st.columns(2)
    with left:
        st.caption("Architecture (config.json)")
        st.text(f"{extra.get('architecture', '?')} (model_type {extra.get('model_type', '?')})")
        st.caption("Input")
        st.text(f"{spec.input.modality}: {spec.input.normalisation}")
        if spec.input.labels:
            st.caption("Label names (config.json id2label, in index order)")
            st.text(", ".join(spec.input.labels[:50]) + (f", … ({len(spec.input.labels)} in all)"
                                                         if len(spec.input.labels) > 50 else ""))
    with right:
        st.caption("Analyses that fit")
        fits = compatible(spec)
        st.text(", ".join(method_label(a) for a in fits) if fits else
                "none yet: this kind of model loads and answers the command line; its pages come later")
        if "attention" not in spec.capabilities:
            st.text("No attention: the architecture has none, so attention views do not list it.")
    st.caption("Weights sha256 (over the folder's safetensors files, in name order; share links record it)")
    st.code(spec.sha256, language=None)
    readme = extra.get("readme", "")
    with st.expander("README.md of the folder" if readme else "README.md: the folder has none", expanded=bool(readme)):
        if readme:
            cut = readme[:README_SHOWN]
            st.markdown(cut + ("\n\n*… (README shortened)*" if len(readme) > README_SHOWN else ""))


def refused_models() -> None:
    """The folders and plugins that could not be used, each with its one-line reason (others keep working)."""
    problems = model_problems()
    if not problems:
        return
    with st.expander(f"{len(problems)} model source(s) refused", expanded=True):
        for where, why in problems.items():
            messages.warning(f"{where}: {why}" if not why.startswith(where) else why)


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
