"""Capsules: capsule lengths, routing per iteration, live pose sliders and reconstructions."""

import streamlit as st

from app import capsule_views as cv
from app import explore_state, explore_views, messages, session, state, views
from app.explore_state import CapsuleView

st.title("Capsules")
bound = state.bind(CapsuleView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(CapsuleView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with views.settings(controls, keys) as ui:
    model = explore_views.model_picker(keys, explore_state.capsule_models(), seed.model, host=ui)
    picked = views.input_picker(keys, seed.input, host=ui)
    target = cv.class_picker(keys, "target", "Decode from capsule", seed.target,
                             "The class capsule the reconstruction, the sliders and the perturbation grid use", ui)
    routing_class = cv.class_picker(keys, "routing_class", "Routing to capsule", seed.routing_class,
                                    "The digit capsule whose routing coefficients are drawn", ui)
    pose = cv.pose_settings(keys, seed, ui)

view = state.settle(bound, CapsuleView(model, picked.ref, target, routing_class, pose))
state.publish(view)

with output:
    results = cv.capsule_results(view, picked.pixels)
    if results:
        result = results["capsules"]
        cv.lengths_panel(result)
        st.subheader("Routing coefficients per iteration", divider="gray")
        cv.routing_panel(result, routing_class)
        st.subheader("Pose", divider="gray")
        st.caption("Move the 16 dimensions of the capsule's pose; the reconstruction follows.")
        cv.pose_sliders(model, picked.pixels, result, float(dict(pose)["span"]))
        if "pose" in results:
            st.caption("Each dimension on its own:")
            cv.perturbation_panel(results["pose"])
        explore_views.downloads(f"capsules-{model}", results, main="capsules/lengths", table=cv.table(results),
                                key="capsules")
        view = views.share_button(view, title=f"Capsules · {model} · {picked.label}",
                                  inputs={"pixels": picked.pixels}, results=results, models=(model,))
        state.publish(view)
