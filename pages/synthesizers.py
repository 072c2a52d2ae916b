"""Synthesizers: one digit through dot-product attention and every Synthesizer variant, side by side."""

import dataclasses

import streamlit as st

from app.features import synthesizers as page
from app.features.synthesizers import SynthesizerView
from app.links import binding
from app.links.codec import canonical
from app.ui import messages, session
from app.ui.pickers import input_picker, no_input
from app.ui.settings import settings
from app.ui.sharing import downloads, input_identity, share_button
from app.ui.widgets import params_form

st.title("Synthesizers")
st.caption("Tay et al. 2020, Synthesizer: Rethinking Self-Attention in Transformer Models — the same ViT with its "
           "attention logits computed five ways: dot product, predicted per token (dense), learned once per head "
           "(random), a low-rank learned pattern (factorized), or a learned mixture of random and dot product.")
bound = binding.bind(SynthesizerView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(SynthesizerView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with settings(controls, keys) as ui:
    picked = input_picker(keys, seed.input, host=ui)
    with ui.expander("Input-dependence measure"):
        stats = params_form(type(seed.stats_object()), seed.stats_object(), keys, prefix="stats",
                            host=ui) or seed.stats_object()

view = binding.settle(bound, SynthesizerView(picked.ref, seed.layer, seed.head, canonical(stats)))
with output:
    share_slot = st.container()  # Share sits at the top of the results, as on every page
    results = None if no_input(picked) else page.synthesizer_results(view, picked.pixels)
    if results:
        models = page.models_in(results)
        layer, head = page.layer_and_head(keys, seed, results[f"{models[0]}.attention"].attentions, bound.opened)
        view = binding.settle(bound, dataclasses.replace(view, layer=layer, head=head))
        binding.publish(view)
        page.synthesizer_maps(results, layer, head)
        page.model_summary(results)
        page.fixed_patterns(results)
        st.subheader("Input-dependence per head", divider="gray")
        table = page.head_statistics(results, view)
        page.mixture(results)
        downloads("synthesizers", results, main=f"{models[0]}.attention/attentions", table=table, key="synthesizers",
                  source=input_identity(picked.ref))
        with share_slot:
            view = share_button(view, title=f"Synthesizers · layer {layer} head {head} · {picked.label}",
                                inputs={"pixels": picked.pixels}, results=results, models=tuple(models))
    binding.publish(view)
