"""Compare: one input, 2-4 columns (a model, a method and its params each), on a colour scale chosen by their units."""

import streamlit as st

from app.features import compare as page
from app.features import compare_text
from app.features.compare import MAX_COLUMNS, MIN_COLUMNS, CompareView
from app.links import binding
from app.ui import messages, session
from app.ui.pickers import input_picker, no_input, text_picker
from app.ui.results import provenance, saved_results
from app.ui.settings import settings
from app.ui.sharing import downloads, input_identity, share_button

st.title("Compare")
bound = binding.bind(CompareView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(CompareView.PAGE, force=bound.opened)
seed = bound.view

picker, setup = st.columns([1, 2.6], gap="large")
with settings(picker, keys) as ui:
    text_mode = compare_text.is_text([c.model for c in seed.columns])
    if text_mode:  # text classifiers: one typed sentence instead of a digit
        text, text_problem = text_picker(keys, seed.text, seed.columns[0].model, host=ui)
    picked = input_picker(keys, seed.input, host=ui) if not text_mode else None
    with setup if ui is st else ui:  # a summary lists the columns with the input
        counts = list(range(MIN_COLUMNS, MAX_COLUMNS + 1))
        n = ui.radio("Columns", counts, horizontal=True, key=keys.key("n", len(seed.columns), counts))
        columns = []
        for i, place in enumerate(ui.columns(n)):
            prior = seed.columns[i] if i < len(seed.columns) else seed.columns[-1]
            with place:
                columns.append(page.column_picker(keys, i, prior, host=ui))
        scale = page.scale_picker(keys, seed.scale, host=ui)

view = binding.settle(bound, CompareView(tuple(columns), picked.ref if picked else seed.input, scale,
                                          text=(text or seed.text) if text_mode else seed.text))
binding.publish(view)
mixed = compare_text.modality_problem([c.model for c in columns])
if text_mode or mixed or compare_text.is_text([c.model for c in columns]):
    if mixed:
        messages.error(mixed)
    elif text_mode != compare_text.is_text([c.model for c in columns]):
        messages.info("The columns now read " + ("text" if not text_mode else "images") + ": change any setting "
                      "or reload the page to give them their input.")
    elif text is None:
        messages.error(text_problem)
    elif all(c.valid for c in columns):
        saved = saved_results(view.link)  # a shared text comparison reopens from the store, not recomputed
        found = saved.results if saved is not None else compare_text.text_results(view.columns, view.text)
        if found:
            compare_text.text_panels(view.columns, view.scale, found)
            downloads("compare", found, key="compare", source=input_identity(texts=(view.text,)))
            with (setup if ui is not st else st.container()):
                view = share_button(view, title=" vs ".join(c.title() for c in view.columns) + f" · “{view.text[:40]}”",
                                    inputs={}, results=found, models=tuple(dict.fromkeys(c.model for c in view.columns)))
            binding.publish(view)
    st.stop()

# A report lists its settings in the narrow column; the link and its provenance fill the wide one.
beside = setup if ui is not st else st.container()
share_slot = beside.container()
saved = saved_results(view.link)
if saved is not None:
    with beside:
        provenance(saved)
    results = saved.results
elif no_input(picked):
    results = {}
elif not all(c.valid for c in columns):  # out of range: said in the column; no stale result
    messages.info("No result while a column's parameter is out of range: change it as the message says.")
    results = {}
else:
    results = page.compare_results(view.columns, picked.pixels)
if results:
    page.compare_panels(view, results)
    downloads("compare", results, key="compare", source=input_identity(picked.ref))
    title = " vs ".join(c.title() for c in view.columns)
    with share_slot:
        view = share_button(view, title=f"{title} · {picked.label}", inputs={"pixels": picked.pixels},
                            results=results, models=tuple(dict.fromkeys(c.model for c in view.columns)))
    binding.publish(view)
