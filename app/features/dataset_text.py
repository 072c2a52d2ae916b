"""The Dataset page's panels for text classifiers (minilm-sentiment, user text-classifier folders).

Per example the run keeps the readable words (:func:`analyzers.tokens.merge_scores`) and their
Integrated Gradients; the page shows the worst-explained and most-confused examples as text with
their top words, and per class the words with the largest mean attribution (instead of the image
models' mean |IG| maps). There are no deletion/insertion curves for text (the faithfulness section
says so). Shares keep words and scores as JSON strings: nothing is pickled.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import streamlit as st

from analyzers.dataset import ChunkResult, most_confused, worst_explained
from app.charts.dataset import class_words_chart
from app.ui import messages
from app.ui.figures import show

TOP_WORDS = 5  # words shown after each example


def is_text(ex: ChunkResult) -> bool:
    return ex.words is not None


def encode(ex: ChunkResult) -> dict[str, np.ndarray]:
    """Words and their scores per example as JSON strings (a share stores plain arrays only)."""
    return {"words": np.asarray([json.dumps(list(w)) for w in ex.words], dtype=str),
            "attributions": np.asarray([json.dumps([round(float(v), 9) for v in a]) for a in ex.attributions],
                                       dtype=str)}


def decode(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of :func:`encode`: object arrays of word tuples and float arrays."""
    words = np.empty(len(arrays["words"]), dtype=object)
    scores = np.empty(len(arrays["words"]), dtype=object)
    for i, (w, a) in enumerate(zip(arrays["words"].tolist(), arrays["attributions"].tolist())):
        words[i] = tuple(json.loads(w))
        scores[i] = np.asarray(json.loads(a), dtype=np.float64)
    return {"words": words, "attributions": scores}


def top_words(words: tuple[str, ...], scores: np.ndarray, n: int = TOP_WORDS) -> str:
    """The example's ``n`` words with the largest attribution, e.g. ``loved (+0.91), every (+0.12)``."""
    order = sorted(range(len(words)), key=lambda i: (-float(scores[i]), i))[:n]
    return ", ".join(f"{words[i]} ({float(scores[i]):+.2f})" for i in order)


def examples_panel(ex: ChunkResult, labels: tuple[str, ...]) -> None:
    """The worst-explained and the most-confused texts, with their prediction and top words."""
    left, right = st.columns(2)
    for host, title, rows in ((left, "Worst explained (largest completeness error)", worst_explained(ex)),
                              (right, "Most confused (wrong and sure)", most_confused(ex))):
        with host:
            st.markdown(f"**{messages.escape(title)}**")
            if not len(rows):
                st.caption("None so far.")
            for i in rows:
                truth = labels[ex.label[i]] if ex.label[i] >= 0 else "?"
                head = (f"#{int(ex.index[i])}: true {truth}, predicted {labels[ex.prediction[i]]} "
                        f"({ex.confidence[i]:.0%}), rel_error {ex.rel_error[i]:.1%}")
                st.markdown(f"{messages.escape(head)}  \n> {messages.escape(text_of(ex, i))}")
                st.caption("Top words for " + messages.escape(labels[ex.target[i]]) + ": "
                           + messages.escape(top_words(ex.words[i], ex.attributions[i])))


def text_of(ex: ChunkResult, i: int) -> str:
    return " ".join(ex.words[i])


def words_panel(s: Any) -> None:
    """Per class the words with the largest mean attribution toward it."""
    rows = s.extra.get("class_words", [])
    if not any(rows):
        st.caption("No words yet.")
        return
    show(class_words_chart(rows, s.labels), "Top words per class", key="ds-words")


def faithfulness_caption() -> None:
    st.caption("Deletion/insertion curves are measured for image classifiers only; text runs report IG's "
               "completeness error (above) as their check.")


def text_results(ex: ChunkResult, s: Any, labels: tuple[str, ...]) -> None:
    """The text panels after the shared headline, confusion matrix and slices."""
    st.subheader("Examples to look at", divider="gray")
    examples_panel(ex, labels)
    st.subheader("Top words per class", divider="gray")
    st.caption("Each bar is a word's mean Integrated Gradients toward the class, over the examples explained for "
               "that class (pad baseline, through the word embeddings); the number is how often it occurred.")
    words_panel(s)
    st.subheader("Faithfulness per method", divider="gray")
    faithfulness_caption()
