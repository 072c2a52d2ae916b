"""The Sequence page: a word in, its phones out, and what the G2P models looked at to say each one.

Type any word (one the dictionary does not have too): the model decodes it one phone at a time.
The alignment matrix (output phones x input letters) shows where it attended; for monotonic
attention the expected alignment it was trained on and the hard alignment it decodes with
stand side by side, the attended letter moving only forward (Raffel et al. 2017,
https://arxiv.org/abs/1704.00784). A slider steps through decoding with each step's
candidates; every output phone gets an attribution over the letters (Integrated Gradients with
its completeness readout per step, Input x Gradient, Occlusion); the attention entropy is drawn
per step. "Compare soft and monotonic" runs both models on the word side by side.

Link: ``/sequence?model=g2p-monotonic&word=phoenix&attribution=occlusion&compare=1``.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import streamlit as st

from analyzers.sequence import SequenceAttributionParams, SequenceParams
from app.charts import sequence as charts
from app.links.catalogue import sequence_models
from app.links.codec import Params, Query, QueryReader, canonical, defaults, params_object, read_params, saved_link, \
    write_params
from app.runtime import compute
from app.ui import messages, session
from app.ui.figures import show_built
from app.ui.results import computed, results_for
from app.ui.widgets import build_params, number_field
from model_zoo.g2p import G2PInputError, encode_word

DEFAULT_MODEL = "g2p-monotonic"
DEFAULT_WORD = "zooscope"  # not in CMUdict: the page shows what the models say for a new word
MAX_WORD = 40  # letters typed on the page (the model reads up to 64)
METHOD_LABELS = {"integrated_gradients": "Integrated Gradients", "input_x_gradient": "Input x Gradient",
                 "occlusion": "Occlusion (one letter at a time)"}


def check_word(word: str) -> str:
    """The word lower-cased and stripped; a clear G2PInputError for anything the models cannot read."""
    w = (word or "").strip().lower()
    if len(w) > MAX_WORD:
        raise G2PInputError(f"{len(w)} letters is more than this page reads ({MAX_WORD}); type one word")
    encode_word(w)
    return w


def _attr_defaults() -> Params:
    return defaults(SequenceAttributionParams)


# --------------------------------------------------------------------------- link


@dataclass(frozen=True)
class SequenceView:
    """The Sequence page: a G2P model, a word, the attribution settings, and whether both models are compared.

    URL: ``?model=g2p-soft&word=phoenix`` plus ``attribution``, ``n_steps``, ``method``,
    ``internal_batch_size`` when they differ from their defaults, and ``compare=1``.
    """

    PAGE: ClassVar[str] = "sequence"

    model: str = DEFAULT_MODEL
    word: str = DEFAULT_WORD
    attribution: Params = field(default_factory=_attr_defaults)
    compare: bool = False
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[SequenceView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        models = sequence_models()
        model = r.choice("model", models, DEFAULT_MODEL if DEFAULT_MODEL in models else models[0], "sequence model")
        word = DEFAULT_WORD
        raw = r.raw("word")
        if raw is not None:
            try:
                word = check_word(raw)
            except G2PInputError as e:
                r.problems.append(f"word: {e}. Showing {DEFAULT_WORD!r} instead.")
        attribution = read_params(r, SequenceAttributionParams)
        compare = r.choice("compare", ("0", "1"), "0", "compare flag") == "1"
        return cls(model, word, attribution, compare), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        query = {"model": self.model, "word": self.word, **write_params(self.attribution, _attr_defaults())}
        return {**query, "compare": "1"} if self.compare else query

    def attribution_params(self) -> SequenceAttributionParams:
        return params_object(SequenceAttributionParams, self.attribution)

    def models(self) -> tuple[str, ...]:
        """The model, then (comparing) the other sequence models."""
        return (self.model, *(m for m in sequence_models() if m != self.model)) if self.compare else (self.model,)


# --------------------------------------------------------------------------- settings


def word_input(keys: session.WidgetKeys, seed: SequenceView, host: Any = st) -> str | None:
    """The word box; None (after saying what is wrong) when the models cannot read what was typed."""
    raw = host.text_input("Word", key=keys.key("word", seed.word), max_chars=MAX_WORD,
                          help="Any word, in the dictionary or not: letters a-z and apostrophes")
    try:
        return check_word(raw)
    except G2PInputError as e:
        messages.error(f"Word: {e}.")
        return None


def attribution_settings(keys: session.WidgetKeys, seed: SequenceView, host: Any = st) -> Params:
    """Method and path settings of the per-token attribution, seeded from the view."""
    current = seed.attribution_params()
    options = list(METHOD_LABELS)
    method = host.selectbox("Attribution", options, key=keys.key("attribution", current.attribution, options),
                            format_func=METHOD_LABELS.get, help="How each output phone is explained over the letters")
    with host.expander("Integrated Gradients settings"):
        values = {f: number_field(keys, "attr", f, current, host) for f in ("n_steps", "internal_batch_size")}
        quad = host.selectbox("method", ["gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left",
                                         "riemann_right"], key=keys.key("attr.method", current.method),
                              help="Quadrature rule for the path integral")
    params = build_params(SequenceAttributionParams, {"attribution": method, **values, "method": quad}, current)
    return canonical(params)


# --------------------------------------------------------------------------- results


def sequence_results(view: SequenceView) -> dict[str, Any] | None:
    """The view's saved results, or alignment and attribution computed for each model shown."""
    return results_for(view.link, lambda: _compute(view))


def _compute(view: SequenceView) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    params = view.attribution_params()
    for model in view.models():
        decoded = computed(f"Decoding {view.word!r} with {model}…",
                           lambda m=model: compute.run("sequence_alignment", m, SequenceParams(), [view.word]))
        if decoded is None:
            return None
        out[f"{model}.alignment"] = decoded
        if not len(decoded.outputs):
            continue
        attr = computed(f"Attributing every phone of {model}…",
                        lambda m=model: compute.run("sequence_attribution", m, params, [view.word]))
        if attr is not None:
            out[f"{model}.attribution"] = attr
    return out


# --------------------------------------------------------------------------- panels


def output_panel(result: Any) -> None:
    """The phones the model says, and how the decoding went."""
    phones = " ".join(result.outputs) or "(nothing: it emits the end token first)"
    st.markdown(f"**{result.info.model}** says `/{phones}/` for **{messages.escape(result.word)}**")
    if result.attention == "monotonic":
        nowhere = int((result.positions < 0).sum())
        st.caption(f"Decoded online: {result.energy_evaluations} attention energies computed for "
                   f"{len(result.chars)} letters and {len(result.outputs)} phones (at most letters + phones)."
                   + (f" {nowhere} step(s) attend nowhere." if nowhere else ""))
    else:
        st.caption(f"Soft attention: {result.energy_evaluations} energies, every letter at every step "
                   f"({len(result.chars)} x {len(result.outputs) + 1} with the end token).")


def alignment_panel(result: Any, highlight: int | None = None) -> None:
    """The alignment matrix; for monotonic attention the expected (training) and hard (test) alignments side by side."""
    name = result.info.model
    if result.attention != "monotonic":
        show_built(result, f"soft-{highlight}", f"{name} alignment", lambda: (charts.alignment_chart(
            result.alignment, result.outputs, result.chars, "Soft attention weights", highlight), _matrix(result)))
        return
    left, right = st.columns(2)
    with left:
        show_built(result, f"expected-{highlight}", f"{name} expected alignment", lambda: (charts.alignment_chart(
            result.expected, result.outputs, result.chars, "Expected alignment (training)", highlight),
            _matrix(result, "expected")))
    with right:
        show_built(result, f"hard-{highlight}", f"{name} hard alignment", lambda: (charts.alignment_chart(
            result.alignment, result.outputs, result.chars, "Hard alignment (test time)", highlight), _matrix(result)))
    st.caption("Expected: the probability of attending each letter that training optimises (no noise here; rows "
               "may sum to less than 1, the rest runs off the end). Hard: the letter the decoder stops at, scanning "
               "forward from the last one; it never moves back.")


def _matrix(result: Any, which: str = "alignment") -> pd.DataFrame:
    return charts.matrix_frame(getattr(result, which), result.outputs, result.chars, "weight")


@st.fragment
def step_panel(result: Any) -> None:
    """Step through decoding: the alignment row so far, the attended letter and the candidates at that step."""
    n = len(result.outputs)
    if n == 0:
        return
    keys = session.WidgetKeys("sequence")
    step = st.slider("Decoding step", 1, n, key=keys.key(f"step.{result.info.model}", 1)) if n > 1 else 1
    i = step - 1
    left, right = st.columns([1.4, 1])
    with left:
        shown = np.where(np.arange(n)[:, None] <= i, result.alignment, np.nan)
        show_built(result, f"step-{i}", f"{result.info.model} step {step}", lambda: charts.alignment_chart(
            np.nan_to_num(shown), result.outputs[: i + 1] + ("…",) * (n - i - 1), result.chars,
            f"Steps 1-{step}", i))
    with right:
        pos = int(result.positions[i])
        where = "nowhere" if pos < 0 else f"letter {pos + 1} ({result.chars[pos]!r})"
        st.markdown(f"Step {step} emits **{result.outputs[i]}**, attending {where}; entropy "
                    f"{float(result.entropy[i]):.2f} nats.")
        show_built(result, f"cands-{i}", f"candidates step {step}", lambda: charts.candidates_chart(
            result.top_tokens[i], result.top_probs[i], f"Candidates at step {step}"))


def attribution_panel(result: Any) -> None:
    """Each output phone's attribution over the letters, and the completeness readout of every step."""
    show_built(result, "attribution", f"{result.info.model} attribution", lambda: (charts.attribution_chart(
        result.attributions, result.outputs, result.chars, f"{METHOD_LABELS[result.method]}: "
        "each phone's log-probability over the letters"), charts.matrix_frame(
        result.attributions, result.outputs, result.chars, "attribution")))
    st.dataframe(completeness_table(result), hide_index=True, width="stretch")
    if result.method == "occlusion":
        st.caption("Occlusion replaces one letter's embedding with zeros and reads the change; it promises no sum.")
    else:
        worst = np.nanmax(result.rel_error) if np.isfinite(result.rel_error).any() else float("nan")
        st.caption(f"Completeness: each row should sum to log p(token) at the word minus at the baseline (every letter "
                   f"zeroed); worst relative error {worst:.2%}. The decoded prefix (and the monotonic model's hard "
                   "alignment) is held fixed along the path.")


def completeness_table(result: Any) -> pd.DataFrame:
    """One row per output token: F(x), F(baseline), sum of attributions, delta, relative error."""
    return pd.DataFrame({
        "step": np.arange(1, len(result.outputs) + 1), "token": list(result.outputs),
        "log p at the word": np.round(result.f_x, 4), "at the baseline": np.round(result.f_baseline, 4),
        "sum of attributions": np.round(result.attributions.sum(1), 4), "delta": np.round(result.delta, 6),
        "relative error": np.round(result.rel_error, 6)})


def entropy_panel(results: dict[str, Any]) -> None:
    """Attention entropy per decoding step for every model shown."""
    aligns = {k.split(".alignment")[0]: r for k, r in results.items() if k.endswith(".alignment") and len(r.outputs)}
    if not aligns:
        return
    owner = tuple(aligns.values())
    show_built(owner, "entropy", "attention entropy", lambda: charts.entropy_chart(
        {m: r.entropy for m, r in aligns.items()}, {m: r.outputs for m, r in aligns.items()},
        "Attention entropy per step (monotonic: of the expected alignment)"))


def compare_panel(results: dict[str, Any]) -> None:
    """Every model's output and alignment side by side (the hard one for monotonic attention)."""
    aligns = [r for k, r in results.items() if k.endswith(".alignment")]
    for col, r in zip(st.columns(len(aligns)), aligns):
        with col:
            st.markdown(f"**{r.info.model}**: `/{' '.join(r.outputs)}/`")
            title = "Hard alignment" if r.attention == "monotonic" else "Soft weights"
            show_built(r, f"compare-{r.info.model}", f"{r.info.model} alignment", lambda r=r, t=title: charts.alignment_chart(
                r.alignment, r.outputs, r.chars, t, cell=20))


def table(results: dict[str, Any]) -> pd.DataFrame:
    """Per model and output token: the phone, the attended letter, the entropy, the completeness error."""
    rows = []
    for key, r in results.items():
        if not key.endswith(".alignment"):
            continue
        attr = results.get(key.replace(".alignment", ".attribution"))
        for i, tok in enumerate(r.outputs):
            pos = int(r.positions[i])
            rows.append({"model": r.info.model, "word": r.word, "step": i + 1, "token": tok,
                         "attended": "" if pos < 0 else r.chars[pos], "position": pos + 1 if pos >= 0 else 0,
                         "entropy_nats": float(r.entropy[i]),
                         "rel_error": float(attr.rel_error[i]) if attr is not None else float("nan")})
    return pd.DataFrame(rows)
