"""Latent space: the VAEs' held-out set as a scatter, the manifold grid, traversals, interpolation, KL."""

import streamlit as st

from app import explore_state, explore_views, messages, session, state, views
from app import latent_views as lv
from app.explore_state import LATENT_PARTS, LatentView

st.title("Latent space")
bound = state.bind(LatentView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(LatentView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with controls:
    model = explore_views.model_picker(keys, explore_state.latent_models(), seed.model)
    projection = lv.projection_settings(keys, seed, model)
    picked = views.input_picker(keys, seed.input)
    other = lv.other_end(keys, seed)
with output:
    scatter = st.container()
    tabs = dict(zip(("grid", "trav", "interp", "stats"),
                    st.tabs(["Manifold grid", "Traversals", "Interpolation", "KL and active units"])))
    with tabs["grid"]:
        grid = lv.grid_settings(keys, seed, model)
    with tabs["trav"]:
        traversal = lv.part_settings(keys, seed, model, "trav")
    with tabs["interp"]:
        interpolation = lv.part_settings(keys, seed, model, "interp")

settings = (projection, grid, traversal, interpolation)
parts = tuple(zip(LATENT_PARTS, map(state.canonical, settings)))
view = state.settle(bound, LatentView(model, picked.ref, other, parts))
state.publish(view)

with scatter:
    results = lv.latent_results(view, picked.pixels)
if results:
    with scatter:
        if "projection" in results:
            lv.scatter(results, view, marked=[other] + ([] if picked.ref.upload else [picked.ref.sample]))
    with tabs["grid"]:
        if "grid" in results:
            lv.grid_panel(results["grid"], model)
    with tabs["trav"]:
        if "traversal" in results:
            lv.traversal_panel(results["traversal"], results.get("statistics"))
    with tabs["interp"]:
        if "interpolation" in results:
            lv.interpolation_panel(results["interpolation"], picked.label, other)
    with tabs["stats"]:
        if "statistics" in results:
            lv.statistics_panel(results["statistics"])
    with output:
        explore_views.downloads(f"latent-{model}", results, main="projection/mu", table=lv.table(results), key="latent")
        view = views.share_button(view, title=f"Latent space · {model} · {projection.method} · {picked.label}",
                                  inputs={"pixels": picked.pixels}, results=results, models=(model,))
        state.publish(view)
