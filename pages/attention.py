"""Attention: maps per layer and head, rollout over the digit; for text models, two sentences and their similarity."""

import streamlit as st

from app.features import attention as page
from app.features.attention import AttentionView
from app.links import binding, catalogue
from app.links.codec import canonical
from app.ui import messages, session
from app.ui.pickers import model_picker
from app.ui.settings import settings

st.title("Attention")
bound = binding.bind(AttentionView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(AttentionView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with settings(controls, keys) as ui:
    model = model_picker(keys, catalogue.attention_models(), seed.model, host=ui)
    source = page.attention_input(keys, seed, model, host=ui)
    params = page.attention_params(keys, seed, model, host=ui)

if source is not None and source.problem:
    with output:
        messages.info(source.problem)
elif source is not None:
    view = binding.settle(bound, AttentionView(model, source.ref, source.texts, seed.layer, seed.head,
                                               canonical(params)))
    with output:
        results = page.attention_results(view, source, params)
        if results:
            page.seed_layer_and_head(keys, seed, results["attention"].attentions, bound.opened)
            page.attention_panel(bound, view, source, results)
            page.overview(results, source)
