"""Attention: maps per layer and head, rollout over the digit; for text models, two sentences and their similarity."""

import dataclasses

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
with controls:
    model = explore_views.model_picker(keys, explore_state.attention_models(), seed.model)
    source = av.attention_input(keys, seed, model)
    params = av.attention_params(keys, seed, model)

if source is not None:
    view = state.settle(bound, AttentionView(model, source.ref, source.texts, seed.layer, seed.head,
                                             state.canonical(params)))
    with output:
        results = av.attention_results(view, source, params)
        if results:
            result = results["attention"]
            layer, head = av.layer_and_head(keys, seed, result.attentions, bound.opened)
            view = state.settle(bound, dataclasses.replace(view, layer=layer, head=head))
            state.publish(view)
            if source.is_text:
                av.text_attention(result, layer, head, keys)
                if "similarity" in results:
                    av.similarity(results["similarity"])
            else:
                av.image_attention(result, layer, head)
            explore_views.downloads(f"attention-{model}", results, main="attention/attentions",
                                    table=av.attention_table(results, layer, head), key="attention")
            inputs = {} if source.is_text else {"pixels": source.pixels}
            view = views.share_button(view, title=f"Attention · {model} · {source.label}", inputs=inputs,
                                      results=results, models=(model,))
            state.publish(view)
