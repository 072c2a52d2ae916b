"""Capsules: capsule lengths, routing per iteration, live pose sliders and reconstructions."""

import streamlit as st

from app.features import capsules as page
from app.features.capsules import CapsuleView
from app.links import binding, catalogue
from app.ui import messages, session
from app.ui.pickers import input_picker, model_picker, no_input
from app.ui.settings import settings
from app.ui.sharing import downloads, input_identity, share_button

st.title("Capsules")
bound = binding.bind(CapsuleView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(CapsuleView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with settings(controls, keys) as ui:
    model = model_picker(keys, catalogue.capsule_models(), seed.model, host=ui)
    picked = input_picker(keys, seed.input, host=ui)
    target = page.class_picker(keys, "target", "Decode from capsule", seed.target,
                               "The class capsule the reconstruction, the sliders and the perturbation grid use", ui)
    routing_class = page.class_picker(keys, "routing_class", "Routing to capsule", seed.routing_class,
                                      "The digit capsule whose routing coefficients are drawn", ui)
    pose = page.pose_settings(keys, seed, ui)

view = binding.settle(bound, CapsuleView(model, picked.ref, target, routing_class, pose))
binding.publish(view)

with output:
    share_slot = st.container()  # Share sits at the top of the results, as on every page
    results = None if no_input(picked) else page.capsule_results(view, picked.pixels)
    if results:
        result = results["capsules"]
        page.lengths_panel(result)
        st.subheader("Routing coefficients per iteration", divider="gray")
        page.routing_panel(result, routing_class)
        st.subheader("Pose", divider="gray")
        st.caption("Move the 16 dimensions of the capsule's pose; the reconstruction follows.")
        page.pose_sliders(model, picked.pixels, result, float(dict(pose)["span"]))
        if "pose" in results:
            st.caption("Each dimension on its own:")
            page.perturbation_panel(results["pose"])
        downloads(f"capsules-{model}", results, main="capsules/lengths", table=page.table(results), key="capsules",
                  source=input_identity(picked.ref))
        with share_slot:
            view = share_button(view, title=f"Capsules · {model} · {picked.label}",
                                inputs={"pixels": picked.pixels}, results=results, models=(model,))
        binding.publish(view)
