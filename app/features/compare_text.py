"""Compare for text classifiers: one typed sentence, 2-4 columns (a text classifier and its attribution each).

Each column shows the model's prediction and its token attributions as readable words (the Attribution
page's drawing). The colour scale follows :mod:`app.features.compare_fairness` (Integrated Gradients of a
class logit adds up to F(x) − F(baseline) in logit units: one shared scale; else each column its own).
Agreement is computed over words, and only between columns whose word lists are the same (both models
merge the sentence into the same words); other pairs get a sentence saying their words differ.

Link: ``/compare?text=A+fine+film.&columns=minilm-sentiment:integrated_gradients,<folder>:integrated_gradients``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from analyzers.tokens import merge_scores
from app.charts.attribution import word_attribution_chart, word_attribution_frame
from app.features.attribution import WORDS_PER_LINE
from app.features.compare_fairness import rank_correlation, scale_choice, top_k_overlap
from app.links.catalogue import is_text_classifier_model
from app.runtime import compute
from app.ui import messages
from app.ui.figures import show_built
from app.ui.pickers import method_label
from app.ui.results import computed

TOP_WORDS = 3  # top-k overlap over words: a sentence has few


def is_text(models: Sequence[str]) -> bool:
    """True when every model is a text classifier (the Compare page's text mode)."""
    return bool(models) and all(is_text_classifier_model(m) for m in models)


def modality_problem(models: Sequence[str]) -> str | None:
    """One clear message when the columns mix image models and text classifiers; None when they do not."""
    texts = [m for m in models if is_text_classifier_model(m)]
    if not texts or len(texts) == len(models):
        return None
    images = [m for m in models if m not in texts]
    return (f"Compare does not mix image models and text classifiers in one comparison: "
            f"{', '.join(dict.fromkeys(images))} read images, {', '.join(dict.fromkeys(texts))} read text. "
            "Pick models of one kind for every column.")


def text_results(columns: Sequence[Any], text: str) -> dict[str, Any] | None:
    """Attributions of every column on ``text`` (each with its own params), or None if one failed."""
    results = {}
    for i, c in enumerate(columns):
        params = c.params_object()
        result = computed(f"{method_label(c.method)} on {c.model}…",
                          lambda c=c, params=params: compute.run(c.method, c.model, params, [text]))
        if result is None:
            return None
        results[f"col{i}"] = result
    return results


def words_of(result: Any) -> tuple[list[str], np.ndarray]:
    """The readable words of a result (special tokens left out) and their summed attributions."""
    pieces = tuple(result.tokens[0])
    merged = [(w, s) for w, s in merge_scores(pieces, np.asarray(result.attributions[0][: len(pieces)]))
              if not w.special]
    return [w.text.lower() for w, _ in merged], np.array([s for _, s in merged], dtype=np.float64)


def agreement(words: Sequence[tuple[list[str], np.ndarray]], titles: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Spearman ρ of |word attribution| and top-word overlap for pairs with the same words; a sentence for others."""
    rows, differ = [], []
    for i in range(len(words)):
        for j in range(i + 1, len(words)):
            (wa, a), (wb, b) = words[i], words[j]
            if wa != wb:
                differ.append(f"{titles[i]} and {titles[j]} split the sentence into different words "
                              f"({len(wa)} vs {len(wb)}), so they are not compared word by word.")
                continue
            k = min(TOP_WORDS, len(wa))
            rows.append({"columns": f"{titles[i]} vs {titles[j]}", "Spearman ρ": rank_correlation(a, b),
                         f"top-{TOP_WORDS} words overlap": top_k_overlap(a, b, k) if k else float("nan")})
    return pd.DataFrame(rows, columns=["columns", "Spearman ρ", f"top-{TOP_WORDS} words overlap"]), differ


def word_chart(result: Any, title: str, vmax: float, key: str) -> None:
    """The Attribution page's word drawing on the column's colour scale ±``vmax``, with a save menu."""
    pieces = tuple(result.tokens[0])
    scores = np.asarray(result.attributions[0][: len(pieces)])
    show_built(result, key, title, lambda: (word_attribution_chart(pieces, scores, title=title, vmax=vmax,
                                                                   per_line=WORDS_PER_LINE),
                                            word_attribution_frame(pieces, scores)), variant=f"{vmax}:{title}")


def text_panels(columns: Sequence[Any], scale: str, results: dict[str, Any]) -> None:
    """The colour scale in words, each column's prediction and words, and the agreement over words."""
    choice = scale_choice([(c.model, c.method, c.params_object()) for c in columns], scale)
    words = [words_of(results[f"col{i}"]) for i in range(len(columns))]
    ranges = choice.ranges([np.asarray(results[f"col{i}"].attributions[0]) for i in range(len(columns))])
    titles = [f"({i + 1}) {c.title()}" for i, c in enumerate(columns)]
    st.caption(messages.escape(choice.sentence(titles, ranges)))
    for i, (place, column) in enumerate(zip(st.columns(len(columns)), columns)):
        result = results[f"col{i}"]
        with place:
            pred = int(result.predictions[0])
            st.metric("Prediction", result.labels[pred] if 0 <= pred < len(result.labels) else "n/a")
            word_chart(result, titles[i], ranges[i], key=f"col{i}")
            if bool(result.flagged[0]):
                messages.warning(result.advice[0] or "Completeness is off by more than 5%.")
    st.subheader("Agreement between columns")
    st.caption(f"Over the sentence's words (special tokens left out): Spearman ρ of |word attribution| and the "
               f"share of each column's top {TOP_WORDS} words by |attribution| the other has in its top "
               f"{TOP_WORDS} too. Only columns whose models split the sentence into the same words are compared.")
    table, differ = agreement(words, titles)
    if len(table):
        st.table(table.style.format({c: "{:.3f}" for c in table.columns[1:]}, na_rep="n/a"))
    for sentence in differ:
        messages.info(sentence)
