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
with views.settings(controls, keys) as ui:
    model = explore_views.model_picker(keys, explore_state.latent_models(), seed.model, host=ui)
    projection = lv.projection_settings(keys, seed, model, ui)
    picked = views.input_picker(keys, seed.input, host=ui)
    other = lv.other_end(keys, seed, ui)
with output:
    scatter = st.container()
    tabs = st.tabs(["Manifold grid", "Traversals", "Interpolation", "KL and active units"])
    with tabs[0]:
        grid = lv.grid_settings(keys, seed, model)
    with tabs[1]:
        traversal = lv.part_settings(keys, seed, model, "trav")
    with tabs[2]:
        interpolation = lv.part_settings(keys, seed, model, "interp")
    footer = st.container()

settings = (projection, grid, traversal, interpolation)
parts = tuple(zip(LATENT_PARTS, map(state.canonical, settings)))
view = state.settle(bound, LatentView(model, picked.ref, other, parts))
state.publish(view)

boxes = dict(zip(("projection", "grid", "traversal", "interpolation", "statistics"), (scatter, *tabs)))
results = lv.results_and_panels(view, picked, boxes)
if results:
    with footer:
        explore_views.downloads(f"latent-{model}", results, main="projection/mu", table=lv.table(results), key="latent")
        view = views.share_button(view, title=f"Latent space · {model} · {projection.method} · {picked.label}",
                                  inputs={"pixels": picked.pixels}, results=results, models=(model,))
    state.publish(view)
