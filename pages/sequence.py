"""Sequence: a word in, its phones out; alignment, decoding step by step, attribution of every phone."""

import streamlit as st

from app.features import sequence as page
from app.features.sequence import SequenceView
from app.links import binding, catalogue
from app.ui import messages, session
from app.ui.pickers import model_picker
from app.ui.settings import settings
from app.ui.sharing import downloads, input_identity, share_button

st.title("Sequence")
bound = binding.bind(SequenceView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(SequenceView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with settings(controls, keys) as ui:
    model = model_picker(keys, catalogue.sequence_models(), seed.model, host=ui)
    word = page.word_input(keys, seed, host=ui)
    attribution = page.attribution_settings(keys, seed, host=ui)
    compare = ui.checkbox("Compare soft and monotonic", key=keys.key("compare", seed.compare),
                          help="Run every G2P model on the word, side by side")

view = binding.settle(bound, SequenceView(model, word or seed.word, attribution, bool(compare)))
binding.publish(view)

with output:
    share_slot = st.container()  # Share sits at the top of the results, as on every page
    results = None if word is None else page.sequence_results(view)
    if results:
        main = results.get(f"{view.model}.alignment")
        if main is not None:
            page.output_panel(main)
            st.subheader("Alignment", divider="gray")
            page.alignment_panel(main)
            st.subheader("Step through decoding", divider="gray")
            page.step_panel(main)
        if f"{view.model}.attribution" in results:
            st.subheader("Attribution of every phone", divider="gray")
            page.attribution_panel(results[f"{view.model}.attribution"])
        st.subheader("Attention entropy per step", divider="gray")
        page.entropy_panel(results)
        if view.compare:
            st.subheader("Soft and monotonic side by side", divider="gray")
            page.compare_panel(results)
        downloads(f"sequence-{view.model}-{view.word}", results, main=f"{view.model}.alignment/alignment",
                  table=page.table(results), key="sequence", source=input_identity(texts=[view.word]))
        with share_slot:
            view = share_button(view, title=f"Sequence · {view.model} · {view.word}", inputs={},
                                results=results, models=view.models())
        binding.publish(view)
