"""Attention: maps per layer and head, rollout over the digit; for text models, two sentences and their similarity."""

import streamlit as st

from app import attention_views as av
from app import explore_state, explore_views, messages, session, state, views
from app.explore_state import AttentionView

st.title("Attention")
bound = state.bind(AttentionView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(AttentionView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with views.settings(controls, keys) as ui:
    model = explore_views.model_picker(keys, explore_state.attention_models(), seed.model, host=ui)
    source = av.attention_input(keys, seed, model, host=ui)
    params = av.attention_params(keys, seed, model, host=ui)

if source is not None:
    view = state.settle(bound, AttentionView(model, source.ref, source.texts, seed.layer, seed.head,
                                             state.canonical(params)))
    with output:
        results = av.attention_results(view, source, params)
        if results:
            av.seed_layer_and_head(keys, seed, results["attention"].attentions, bound.opened)
            av.attention_panel(bound, view, source, results)
            if not source.is_text:
                av.image_overview(results["attention"])
