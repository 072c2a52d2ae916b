"""Attribution: which pixels made the model decide, with the completeness check, faithfulness curves and sanity check."""

import dataclasses

import streamlit as st

from app.features import attribution as page
from app.features.attribution import AttributionView
from app.links import binding, catalogue
from app.links.codec import canonical
from app.ui import messages, session
from app.ui.pickers import method_label, model_label, no_input
from app.ui.results import provenance, saved_results
from app.ui.settings import settings
from app.ui.sharing import downloads, input_identity, share_button
from app.ui.widgets import params_form

st.title("Attribution")
bound = binding.bind(AttributionView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(AttributionView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with settings(controls, keys) as ui:
    models = catalogue.attribution_models()
    model = ui.selectbox("Model", models, key=keys.key("model", seed.model, models), format_func=model_label)
    methods = catalogue.attribution_methods(model)
    method = ui.selectbox("Method", methods, key=keys.key("method", seed.method, methods), format_func=method_label)
    params_cls = catalogue.params_class(method, model)
    current = seed.params_object() if method == seed.method else params_cls()
    params = params_form(params_cls, current, keys, prefix=method, labels=catalogue.target_labels(model), host=ui)
    picked = page.attribution_input(keys, seed, model, host=ui)

view = binding.settle(bound, AttributionView(model, method, canonical(params or current), picked.ref, seed.check,
                                             text=picked.text))
binding.publish(view)

with output:
    share_slot = st.container()
    saved = saved_results(view.link)
    if saved is not None:
        provenance(saved)
        results = dict(saved.results)
    elif no_input(picked):
        results = {}
    elif params is None:  # out of range: said beside the control; no stale result
        messages.info("No result while a parameter is out of range: change it as the message says.")
        results = {}
    else:
        attribution = page.attribution_only(model, method, params, picked.pixels)
        results = {"attribution": attribution} if attribution is not None else {}
    if results:
        result = results["attribution"]
        page.prediction(result)
        left, right = st.columns(2)
        with left:
            page.attribution_heatmap(result, title=f"{method_label(method)} on {model}")
        with right:
            page.class_scores(result)
        page.completeness(result)
        # The heatmap is on screen already; the faithfulness curves (hundreds of forward passes) follow.
        if saved is None:
            curves = page.attribution_curves(model, method, params, picked.pixels, result)
            if curves is not None:
                results["curves"] = curves
        if "curves" in results:
            page.curves(results["curves"])
        check = page.offers_sanity_check(model) and st.checkbox(
                            "Sanity check: does the map change when the model's weights are random?",
                            key=keys.key("check", seed.check),
                            help="Re-initialises the layers one by one from the output down and runs the same "
                                 "attribution each time (Adebayo et al. 2018).")
        view = binding.settle(bound, dataclasses.replace(view, check=check))
        if check:
            sanity = results.get("sanity") or page.sanity_check(model, method, params, picked.pixels)
            if sanity is not None:
                results["sanity"] = sanity
                page.sanity_panel(sanity)
        downloads(f"{model}-{method}", results, key="attribution", source=input_identity(picked.ref))
        with share_slot:
            view = share_button(view, title=f"{method_label(method)} · {model} · {picked.label}",
                                inputs=picked.share_inputs, results=results, models=(model,))
        binding.publish(view)
