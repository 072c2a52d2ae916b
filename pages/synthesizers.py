"""Synthesizers: one digit through dot-product attention and every Synthesizer variant, side by side."""

import dataclasses

import streamlit as st

from app import attention_views as av
from app import explore_views, messages, session, state, views, widgets
from app.explore_state import SynthesizerView

st.title("Synthesizers")
st.caption("Tay et al. 2020, Synthesizer: Rethinking Self-Attention in Transformer Models — the same ViT with its "
           "attention logits computed five ways: dot product, predicted per token (dense), learned once per head "
           "(random), a low-rank learned pattern (factorized), or a learned mixture of random and dot product.")
bound = state.bind(SynthesizerView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(SynthesizerView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with views.settings(controls, keys) as ui:
    picked = views.input_picker(keys, seed.input, host=ui)
    with ui.expander("Input-dependence measure"):
        stats = widgets.params_form(type(seed.stats_object()), seed.stats_object(), keys, prefix="stats", host=ui)

view = state.settle(bound, SynthesizerView(picked.ref, seed.layer, seed.head, state.canonical(stats)))
with output:
    results = av.synthesizer_results(view, picked.pixels)
    if results:
        first = results[f"{av.models_in(results)[0]}.attention"]
        layer, head = av.layer_and_head(keys, seed, first.attentions, bound.opened)
        view = state.settle(bound, dataclasses.replace(view, layer=layer, head=head))
        state.publish(view)
        av.synthesizer_maps(results, layer, head)
        av.fixed_patterns(results)
        st.subheader("Input-dependence per head", divider="gray")
        table = av.head_statistics(results, view)
        av.mixture(results)
        explore_views.downloads("synthesizers", results, main=f"{av.models_in(results)[0]}.attention/attentions",
                                table=table, key="synthesizers")
        view = views.share_button(view, title=f"Synthesizers · layer {layer} head {head} · {picked.label}",
                                  inputs={"pixels": picked.pixels}, results=results,
                                  models=tuple(av.models_in(results)))
    state.publish(view)
