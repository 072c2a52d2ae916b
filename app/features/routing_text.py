"""The Routing page for the user's text mixture-of-experts folders (Mixtral, Qwen2-MoE, Switch Transformers).

A sentence typed in the settings goes through the model with ``output_router_logits=True``
(:func:`analyzers.token_routing.token_routing`); the page draws tokens x MoE layers, each cell
coloured by the token's first-choice expert (all k experts and gate weights in the tooltip), and
the tokens sent to each expert per layer as bars. Link: ``/routing?model=my-mixtral&text=Hello+world``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from analyzers.token_routing import TokenRoutingParams
from app.charts.routing import load_bars_chart, token_routing_chart
from app.links.codec import QueryReader
from app.runtime import compute
from app.runtime.inputs import InputError, validate_text
from app.ui import messages, session
from app.ui.figures import show_built
from app.ui.results import computed, results_for

DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog."
MAX_TEXT_CHARS = 2000


def read_sentence(r: QueryReader) -> str:
    """The link's ``text`` (checked), or the example sentence; a bad one is reported."""
    value = r.raw("text")
    if value is None:
        return DEFAULT_TEXT
    try:
        return validate_text(value, max_chars=MAX_TEXT_CHARS)
    except InputError as e:
        r.problems.append(f"Text: {e} Showing the example sentence instead.")
        return DEFAULT_TEXT


def text_box(keys: session.WidgetKeys, seed: str, host: Any = st) -> str | None:
    """The sentence routed through the model; None (with a message) when it is empty or too long."""
    seed = seed or DEFAULT_TEXT
    raw = host.text_area("Sentence", key=keys.key("text", seed), max_chars=MAX_TEXT_CHARS, height=100,
                         help="Every token of it goes through the MoE layers; the model's tokenizer splits it.")
    try:
        return validate_text(raw, max_chars=MAX_TEXT_CHARS)
    except InputError as e:
        messages.error(f"Sentence: {e} Type a sentence to route.")
        return None


def text_results(view: Any) -> dict[str, Any] | None:
    """The view's saved results, or the token routing of its sentence computed."""
    def work() -> dict[str, Any] | None:
        routed = computed(f"Routing the sentence through {view.model}…",
                          lambda: compute.run("token_routing", view.model, TokenRoutingParams(), [view.text]))
        return None if routed is None else {"routing": routed}

    return results_for(view.link, work)


def text_panel(result: Any) -> None:
    """Tokens x layers (first expert per cell, gate weights in the tooltip) and the load per expert per layer."""
    tokens = list(result.tokens[0])
    L, E, k = result.experts.shape[1], result.probs.shape[-1], result.k
    norm = ("sum to 1 (renormalised over the k)" if abs(float(result.weights[0, 0, 0].sum()) - 1) < 1e-3
            else "are the softmax over all experts (the model does not renormalise over the k)")
    st.caption(f"{len(tokens)} tokens, {L} MoE layers, {E} experts, top-{k} routing ({result.model_type}). Each cell "
               f"is the token's first-choice expert (opacity: its gate weight); the tooltip lists all {k} chosen "
               f"experts with their gate weights, which {norm}. Experts are numbered per layer.")
    show_built(result, "token-routing", "Routing per token", lambda: (
        token_routing_chart(tokens, result.experts[0], result.weights[0], E, "First-choice expert per token"), None))
    st.subheader("Tokens per expert", divider="gray")
    cols = st.columns(min(L, 4))
    for l in range(L):
        with cols[l % len(cols)]:
            show_built(result, f"token-load-{l}", f"Tokens per expert, layer {l}", lambda l=l: (
                load_bars_chart(result.load[0, l], f"Layer {l} ({len(tokens)} tokens x {k})"), None))


def table(results: dict[str, Any]) -> pd.DataFrame:
    """Per MoE layer and token: the chosen experts and gate weights, for the CSV download."""
    r = results["routing"]
    k = r.experts.shape[-1]
    return pd.DataFrame([{"layer": l, "position": t, "token": tok,
                          **{f"expert_{j}": int(r.experts[0, l, t, j]) for j in range(k)},
                          **{f"gate_{j}": float(r.weights[0, l, t, j]) for j in range(k)}}
                         for l in range(r.experts.shape[1]) for t, tok in enumerate(r.tokens[0])])
