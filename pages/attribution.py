"""Attribution: which pixels made the model decide, with the completeness check and faithfulness curves."""

import streamlit as st

from app import messages, session, state, views, widgets
from app.state import AttributionView

st.title("Attribution")
bound = state.bind(AttributionView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(AttributionView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with views.settings(controls, keys) as ui:
    models = state.attribution_models()
    model = ui.selectbox("Model", models, key=keys.key("model", seed.model, models), format_func=views.model_label)
    methods = state.attribution_methods(model)
    method = ui.selectbox("Method", methods, key=keys.key("method", seed.method, methods),
                          format_func=views.method_label)
    params_cls = state.params_class(method)
    current = seed.params_object() if method == seed.method else params_cls()
    params = widgets.params_form(params_cls, current, keys, prefix=method, labels=views.labels_of(model), host=ui)
    picked = views.input_picker(keys, seed.input, host=ui)

view = state.settle(bound, AttributionView(model, method, state.canonical(params), picked.ref))
state.publish(view)

with output:
    share_slot = st.container()
    saved = views.saved_results(view.link)
    if saved is not None:
        views.provenance(saved)
        results = dict(saved.results)
    else:
        attribution = views.attribution_only(model, method, params, picked.pixels)
        results = {"attribution": attribution} if attribution is not None else {}
    if results:
        result = results["attribution"]
        views.prediction(result)
        left, right = st.columns(2)
        with left:
            views.attribution_heatmap(result, title=f"{views.method_label(method)} on {model}")
        with right:
            views.class_scores(result)
        views.completeness(result)
        # The heatmap is on screen already; the faithfulness curves (hundreds of forward passes) follow.
        if saved is None:
            curves = views.attribution_curves(model, method, params, picked.pixels, result)
            if curves is not None:
                results["curves"] = curves
        if "curves" in results:
            views.curves(results["curves"])
        views.downloads(f"{model}-{method}", results, key="attribution")
        with share_slot:
            view = views.share_button(view, title=f"{views.method_label(method)} · {model} · {picked.label}",
                                      inputs={"pixels": picked.pixels}, results=results, models=(model,))
        state.publish(view)
