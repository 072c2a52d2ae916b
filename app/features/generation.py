"""The Generation page: a text in, a continuation (causal LM) or a translation (sequence-to-sequence) out, and why.

For the user's sequence-to-sequence and causal-LM folders (``zooscope serve --model PATH``) and the zoo's
SmolLM2-135M-Instruct. Greedy decoding generates N tokens; the page shows the candidates at every step,
the attribution matrix (generated tokens x input tokens: Integrated Gradients of every generated token
over the source and the prefix, with its completeness readout per token, as inseq does), a contrastive
question (why this token rather than that one: IG of logit(A) - logit(B)), and the encoder self-,
decoder self- and cross-attention per layer and head (bertviz's views). SmolLM2 loads in the background
with its progress shown; nothing waits on it.

Link: ``/generation?model=tiny-gpt2&text=The+film+was&max_new_tokens=8&step=2&foil=%C4%A0bad&words=0``.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import streamlit as st

from analyzers.generation import ContrastParams, GenerationIGParams, GenerationParams
from app.charts import generation as charts
from app.links.catalogue import generation_models
from app.links.codec import (
    Params,
    Query,
    QueryReader,
    canonical,
    defaults,
    params_object,
    read_params,
    read_text,
    saved_link,
    write_params,
)
from app.runtime import background, compute
from app.ui import messages, session
from app.ui.figures import show_built
from app.ui.results import computed, results_for
from app.ui.settings import SettingsSummary
from app.ui.widgets import build_params, number_field
from model_zoo import get_spec

DEFAULT_MODEL = "smollm2-135m"
DEFAULT_TEXT = "The capital of France is"
MAX_CHARS = 1000
MAX_FOIL = 40
TARGET_LABELS = {"log_prob": "log-probability of the token", "logit": "logit of the token"}
BASELINE_LABELS = {"pad": "pad token embedding everywhere", "zero": "zero embedding everywhere",
                   "pad_keep_first": "first token kept, pad token embedding after it"}
ATTENTION_KINDS = {"self": "Decoder self-attention", "cross": "Cross-attention (decoder over source)",
                   "encoder": "Encoder self-attention"}


def _ig_defaults() -> Params:
    return defaults(GenerationIGParams)


@dataclass(frozen=True)
class GenerationView:
    """The Generation page: a generative model, a text, the attribution settings, and the contrast's step and foil.

    URL: ``?model=...&text=...`` plus ``max_new_tokens``, ``target``, ``baseline``, ``n_steps``, ``method``,
    ``internal_batch_size`` when they differ from their defaults, ``step`` and ``foil`` (the contrast;
    foil empty = the runner-up), ``words=0`` for one column per token piece.
    """

    PAGE: ClassVar[str] = "generation"

    model: str = DEFAULT_MODEL
    text: str = DEFAULT_TEXT
    attribution: Params = field(default_factory=_ig_defaults)
    step: int = 1
    foil: str = ""
    words: bool = True
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[GenerationView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        models = generation_models()
        model = r.choice("model", models, default_model(models), "generative model") if models else DEFAULT_MODEL
        text = read_text(r, "text", DEFAULT_TEXT, "text")
        attribution = read_params(r, GenerationIGParams)
        step = r.integer("step", 1, 64, 1, "step (the contrast's generation step, 1 = the first generated token)")
        foil = r.raw("foil") or ""
        if len(foil) > MAX_FOIL or not foil.isprintable():
            r.problems.append(f"foil: a token of at most {MAX_FOIL} printable characters. Using the runner-up.")
            foil = ""
        words = r.choice("words", ("0", "1"), "1", "words flag") == "1"
        return cls(model, text, attribution, step, foil, words), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        query = {"model": self.model, "text": self.text, **write_params(self.attribution, _ig_defaults())}
        if self.step != 1:
            query["step"] = str(self.step)
        if self.foil:
            query["foil"] = self.foil
        return query if self.words else {**query, "words": "0"}

    def ig_params(self) -> GenerationIGParams:
        return params_object(GenerationIGParams, self.attribution)

    def generation_params(self) -> GenerationParams:
        return GenerationParams(max_new_tokens=self.ig_params().max_new_tokens)

    def contrast_params(self) -> ContrastParams:
        p = self.ig_params()
        return ContrastParams(max_new_tokens=p.max_new_tokens, step=self.step, foil=self.foil, baseline=p.baseline,
                              n_steps=p.n_steps, method=p.method, internal_batch_size=p.internal_batch_size)


def default_model(models: tuple[str, ...]) -> str:
    return DEFAULT_MODEL if DEFAULT_MODEL in models else models[0]


# --------------------------------------------------------------------------- settings


def text_input(keys: session.WidgetKeys, seed: GenerationView, host: Any = st) -> str | None:
    """The text box; None (after saying what is wrong) when the text cannot be used."""
    from app.runtime.inputs import InputError, validate_text

    raw = host.text_area("Text", key=keys.key("text", seed.text), max_chars=MAX_CHARS, height=90,
                         help="A prompt to continue (causal LM) or a text to translate or transform (sequence-to-sequence)")
    try:
        return validate_text(raw, max_chars=MAX_CHARS)
    except InputError as e:
        messages.error(f"Text: {e}")
        return None


def attribution_settings(keys: session.WidgetKeys, seed: GenerationView, host: Any = st) -> Params:
    """How many tokens to generate, and what is attributed from which baseline, seeded from the view."""
    current = seed.ig_params()
    n = number_field(keys, "ig", "max_new_tokens", current, host)
    with host.expander("Attribution settings"):
        target = host.selectbox("Explain", list(TARGET_LABELS), key=keys.key("ig.target", current.target,
                                                                             list(TARGET_LABELS)),
                                format_func=TARGET_LABELS.get, help="What each row of the matrix attributes")
        baseline = host.selectbox("Baseline", list(BASELINE_LABELS),
                                  key=keys.key("ig.baseline", current.baseline, list(BASELINE_LABELS)),
                                  format_func=BASELINE_LABELS.get, help="Every input embedding replaced by this")
        values = {f: number_field(keys, "ig", f, current, host) for f in ("n_steps", "internal_batch_size")}
    params = build_params(GenerationIGParams, {"max_new_tokens": n, "target": target, "baseline": baseline,
                                               **values, "method": current.method}, current)
    return canonical(params)


def contrast_settings(keys: session.WidgetKeys, seed: GenerationView, host: Any = st) -> tuple[int, str]:
    """The contrast's step and foil token (empty: the runner-up at that step)."""
    title = "Why this token rather than that one?"
    if isinstance(host, SettingsSummary):  # a share link opened as a report: its markdown() is the summary itself
        host.note("", title)
    else:
        host.markdown(f"**{messages.escape(title)}**")
    step = host.number_input("At generation step", 1, 64, key=keys.key("step", seed.step), step=1,
                             help="1 = the first generated token")
    foil = host.text_input("Rather than (a token)", key=keys.key("foil", seed.foil), max_chars=MAX_FOIL,
                           help="A token as the tokenizer spells it (see the candidates table, e.g. Ġdog); "
                                "empty = the runner-up at that step")
    return int(step), (foil or "").strip()


# --------------------------------------------------------------------------- results


def model_ready(model: str) -> bool:
    """True when the model can run now; for a slow model (SmolLM2) start its background load and show how it goes."""
    try:
        spec = get_spec(model)
    except KeyError as e:
        messages.error(str(e.args[0]) if e.args else f"unknown model {model!r}")
        return False
    if not background.needs_background(spec):
        return True
    state = background.start(model)
    if state.done:
        return True
    if state.failed:
        messages.error(f"{model} could not be loaded: {state.error}")
        return False
    _loading(model)
    return False


@st.fragment(run_every=1.0)
def _loading(model: str) -> None:
    """Polled every second: the load's elapsed time against its usual time; the page reruns when it is done."""
    state = background.state(model)
    if state is None or state.done or state.failed:
        st.rerun()
        return
    usual = 45.0
    st.progress(min(0.95, state.seconds / usual),
                text=f"Loading {model} in the background: {state.seconds:.0f} s (usually 30-60 s on 2 cores). "
                     "Other pages and visitors are not held up; this page fills in when it is ready.")


def generation_results(view: GenerationView) -> dict[str, Any] | None:
    """The view's saved results, or generation, attribution and the contrast computed."""
    return results_for(view.link, lambda: _compute(view))


def _compute(view: GenerationView) -> dict[str, Any] | None:
    if not model_ready(view.model):
        return None
    out: dict[str, Any] = {}
    gen = computed(f"Generating with {view.model}…",
                   lambda: compute.run("generation_attention", view.model, view.generation_params(), [view.text]))
    if gen is None:
        return None
    out["generation"] = gen
    attr = computed(f"Attributing every generated token of {view.model}…",
                    lambda: compute.run("generation_attribution", view.model, view.ig_params(), [view.text]))
    if attr is not None:
        out["attribution"] = attr
    if view.step > len(gen.generated):
        messages.warning(f"The contrast's step {view.step} does not exist: {len(gen.generated)} token(s) were "
                         "generated. Choose a smaller step.")
        return out
    contrast = computed("Contrasting…", lambda: compute.run("generation_contrast", view.model, view.contrast_params(),
                                                             [view.text]))
    if contrast is not None:
        out["contrast"] = contrast
    return out


# --------------------------------------------------------------------------- panels


def output_panel(result: Any) -> None:
    """The text and what the model generated after it, and the candidates at every step."""
    verb = "continues" if result.kind == "causal-lm" else "answers"
    st.markdown(f"**{messages.escape(result.info.model)}** {verb}: {messages.escape(result.text)} "
                f"**:blue[{messages.escape(' '.join(result.generated_text.replace(chr(10), ' ⏎ ').split()))}]**")
    st.caption(f"Greedy decoding, {len(result.generated)} token(s); the source is {len(result.source)} token(s).")
    with st.expander("Candidates at every step"):
        st.dataframe(candidates_table(result), hide_index=True, width="stretch")


def candidates_table(result: Any) -> pd.DataFrame:
    """Per step: the chosen token, then the likeliest alternatives as the tokenizer spells them, with probabilities."""
    rows = []
    for i, (toks, probs) in enumerate(zip(result.top_tokens, result.top_probs)):
        rows.append({"step": i + 1, "generated": charts.readable(result.generated[i]),
                     **{f"#{k + 1}": f"{t} ({p:.1%})" for k, (t, p) in enumerate(zip(toks, probs))}})
    return pd.DataFrame(rows)


def attribution_panel(result: Any, words: bool) -> None:
    """The matrix (generated tokens x input tokens) and the completeness readout of every row."""
    what = TARGET_LABELS[result.target]
    show_built(result, f"matrix-{words}", f"{result.info.model} attribution matrix", lambda: (
        charts.attribution_matrix_chart(result.attributions, result.generated, result.source, result.prefix,
                                        f"Integrated Gradients: each generated token's {what}", words),
        charts.matrix_frame(result.attributions, result.generated, result.source, result.prefix, words)))
    worst = float(np.nanmax(result.rel_error)) if len(result.rel_error) else float("nan")
    st.caption(f"Left of the dark rule: the source; right of it: the prefix the model had generated. Cells right of a "
               f"row's own position are 0 (the model cannot see later tokens). Completeness: every row sums to its "
               f"{what} at the text minus at the baseline ({BASELINE_LABELS[result.baseline]}); worst "
               f"relative error {worst:.2%}.")
    if worst > 0.05:
        i = int(np.nanargmax(result.rel_error))
        messages.warning(completeness_advice(result.kind, result.baseline, worst, charts.readable(result.generated[i]),
                                             float(result.f_x[i] - result.f_baseline[i]), float(result.delta[i])))
    with st.expander("Completeness per generated token"):
        st.dataframe(completeness_table(result), hide_index=True, width="stretch")


def completeness_advice(kind: str, baseline: str, worst: float, token: str, gap: float, miss: float) -> str:
    """What to change when a row (``token``, moving ``gap`` from baseline to text, missed by ``miss``) does not add up.

    For a causal LM first hold its first token (the attention sink); a row that barely moves is judged relatively.
    """
    head = f"Completeness does not hold here (worst relative error {worst:.0%}): the path integral has not converged."
    if kind == "causal-lm" and baseline != "pad_keep_first":
        return (f"{head} A causal LM without a start token (SmolLM2) uses its first token as an attention sink; "
                "moving it along the path with the others makes the integrand rough (SmolLM2, measured: 186% at 16 "
                "steps, 85% at 256, 5% at 512). In Attribution settings choose the baseline \"first token kept\" "
                "(measured 0.02% at 64 steps; the first token then gets no attribution), or raise n_steps to 512.")
    small = (f" The worst row, {token}, moves only {abs(gap):.3f} from the baseline to the text and its attributions "
             f"miss by {abs(miss):.3f}: a small change, so a small miss is a large share of it." if abs(gap) < 0.5 else "")
    jump = (" A model that normalises its embeddings first (T5, Llama, SmolLM2) sees the zero baseline as a jump: "
            "prefer a pad baseline." if baseline == "zero" else "")
    return (f"{head}{small} Raise n_steps (SmolLM2, first token kept: a newline row that moves 0.09 had 67% at 64 "
            f"steps and 0.8% at 128).{jump}")


def completeness_table(result: Any) -> pd.DataFrame:
    """One row per generated token: F(x), F(baseline), the sum of its attributions, delta, relative error."""
    return pd.DataFrame({
        "step": np.arange(1, len(result.generated) + 1), "token": [charts.readable(t) for t in result.generated],
        "F(text)": np.round(result.f_x, 4), "F(baseline)": np.round(result.f_baseline, 4),
        "sum of attributions": np.round(result.attributions.sum(1), 4), "delta": np.round(result.delta, 6),
        "relative error": np.round(result.rel_error, 6)})


def contrast_panel(result: Any) -> None:
    """Why the generated token rather than the foil: each input token's share of logit(fact) - logit(foil)."""
    fact, foil = charts.readable(result.fact), charts.readable(result.foil)
    a, b, c = st.columns(3)
    a.metric(f"p({fact})", f"{result.p_fact:.1%}", help=f"The generated token at step {result.step} ({result.fact})")
    b.metric(f"p({foil})", f"{result.p_foil:.1%}", help=f"The foil ({result.foil})")
    c.metric("logit difference", f"{result.f_x:+.3f}", help="logit(fact) - logit(foil) at the text")
    show_built(result, "contrast", f"{result.info.model} contrast", lambda: (
        charts.contrast_chart(result.attributions, result.inputs, len(result.source),
                              f"Why {fact!r} rather than {foil!r} at step {result.step}"),
        pd.DataFrame({"input": list(result.inputs), "contrast": result.attributions,
                      "fact": result.fact_attributions, "foil": result.foil_attributions})))
    st.caption(f"Red tokens push towards {fact!r}, blue towards {foil!r}. The bars sum to the logit difference at "
               f"the text minus at the baseline (relative error {result.rel_error:.2%}); they are the difference of "
               "the two tokens' own attributions.")
    if result.rel_error > 0.05:
        messages.warning(completeness_advice(result.kind, result.baseline, result.rel_error, "the contrast",
                                             result.f_x - result.f_baseline, result.delta))


@st.fragment
def attention_panel(result: Any) -> None:
    """Encoder, decoder and cross-attention: one layer and head (or the mean over heads) at a time."""
    keys = session.WidgetKeys(GenerationView.PAGE)
    kinds = ["self"] + (["cross", "encoder"] if result.kind == "seq2seq" else [])
    if result.self_attention.size == 0:
        messages.info(f"{result.info.model} returned no attention weights.")
        return
    a, b, c = st.columns([1.6, 1, 1])
    kind = a.selectbox("Attention", kinds, key=keys.key("attn.kind", "self", kinds), format_func=ATTENTION_KINDS.get)
    weights = {"self": result.self_attention, "cross": result.cross_attention, "encoder": result.encoder_attention}[kind]
    layers, heads = int(weights.shape[0]), int(weights.shape[1])
    layer = b.selectbox("Layer", list(range(1, layers + 1)), key=keys.key("attn.layer", layers, list(range(1, layers + 1))))
    head_opts = ["mean"] + [str(h) for h in range(1, heads + 1)]
    head = c.selectbox("Head", head_opts, key=keys.key("attn.head", "mean", head_opts))
    w = weights[layer - 1].mean(0) if head == "mean" else weights[layer - 1, int(head) - 1]
    rows = result.source if kind == "encoder" else result.self_tokens
    cols = result.source if kind in ("encoder", "cross") else result.self_tokens
    title = f"{ATTENTION_KINDS[kind]}, layer {layer}, " + ("mean over heads" if head == "mean" else f"head {head}")
    show_built(result, f"attn-{kind}-{layer}-{head}", f"{result.info.model} attention", lambda: (
        charts.attention_chart(w, rows, cols, title), None))


def table(results: dict[str, Any]) -> pd.DataFrame:
    """Per generated token: its step, piece, readable text, probability and completeness error."""
    gen, attr = results.get("generation"), results.get("attribution")
    if gen is None:
        return pd.DataFrame()
    return pd.DataFrame({"model": gen.info.model, "step": np.arange(1, len(gen.generated) + 1),
                         "token": list(gen.generated), "text": [charts.readable(t) for t in gen.generated],
                         "probability": gen.top_probs[:, 0] if gen.top_probs.size else np.nan,
                         "rel_error": attr.rel_error if attr is not None else np.nan})
