"""Latent space: the VAEs' held-out set as a scatter, the manifold grid, traversals, interpolation, KL."""

import streamlit as st

from app.features import latent as page
from app.features.latent import LATENT_PARTS, LatentView
from app.links import binding, catalogue
from app.links.codec import canonical
from app.ui import messages, session
from app.ui.pickers import input_picker, model_picker
from app.ui.settings import settings
from app.ui.sharing import downloads, input_identity, share_button

st.title("Latent space")
bound = page.with_saved_grid(binding.bind(LatentView))
messages.link_problems(bound.problems)
keys = session.WidgetKeys(LatentView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with settings(controls, keys) as ui:
    model = model_picker(keys, catalogue.latent_models(), seed.model, host=ui)
    projection = page.projection_settings(keys, seed, model, ui)
    picked = input_picker(keys, seed.input, host=ui)
    other = page.other_end(keys, seed, ui)
with output:
    share_slot = st.container()  # Share sits at the top of the results, as on every page
    scatter = st.container()
    tabs = st.tabs(["Manifold grid", "Traversals", "Interpolation", "KL and active units"])
    with tabs[0]:
        grid = page.grid_settings(keys, seed, model)
    with tabs[1]:
        traversal = page.part_settings(keys, seed, model, "trav")
    with tabs[2]:
        interpolation = page.part_settings(keys, seed, model, "interp")
    footer = st.container()

parts = tuple(zip(LATENT_PARTS, map(canonical, (projection, grid, traversal, interpolation))))
view = binding.settle(bound, LatentView(model, picked.ref, other, parts))
binding.publish(view)

boxes = dict(zip(("projection", "grid", "traversal", "interpolation", "statistics"), (scatter, *tabs)))
results = page.results_and_panels(view, picked, boxes, keys)
if results:
    with footer:
        downloads(f"latent-{model}", results, main="projection/mu", table=page.table(results), key="latent",
                  source=input_identity(picked.ref))
    if picked.ready:
        with share_slot:
            view = share_button(view, title=f"Latent space · {model} · {projection.method} · {picked.label}",
                                inputs={"pixels": picked.pixels}, results=results, models=(model,))
    binding.publish(view)
