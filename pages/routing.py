"""Routing: where a mixture of experts sends each patch, how balanced the experts are, and why."""

import streamlit as st

from app.features import routing as page
from app.features import routing_text
from app.features.routing import RoutingView
from app.links import binding, catalogue
from app.ui import messages, session
from app.ui.pickers import input_picker, model_picker, no_input
from app.ui.settings import settings
from app.ui.sharing import downloads, input_identity, share_button

st.title("Routing")
bound = binding.bind(RoutingView)
messages.link_problems(bound.problems)
keys = session.WidgetKeys(RoutingView.PAGE, force=bound.opened)
seed = bound.view

controls, output = st.columns([1, 2.6], gap="large")
with settings(controls, keys) as ui:
    model = model_picker(keys, catalogue.routing_models(), seed.model, host=ui)
    text_moe = catalogue.is_text_model(model)  # the user's Mixtral / Qwen2-MoE / Switch folders: a sentence
    if text_moe:
        sentence = routing_text.text_box(keys, seed.text, ui)
    else:
        picked = input_picker(keys, seed.input, host=ui)
        block = page.layer_picker(keys, model, seed.block, bound.opened, ui)
        expert = page.expert_picker(keys, model, "expert", "Gate explained", seed.expert, bound.opened,
                                    "The expert whose gate logit Integrated Gradients explains", ui,
                                    auto="the first choice")
        token = page.token_picker(keys, seed.token, ui)
        ablate = page.expert_picker(keys, model, "ablate", "Expert removed", seed.ablate, bound.opened,
                                    "Taken out of the routing: its tokens go to their next best experts", ui)
        ig = page.ig_settings(keys, seed, ui)

if text_moe:
    view = binding.settle(bound, RoutingView(model, text=sentence or ""))
    binding.publish(view)
    with output:
        share_slot = st.container()
        results = None if sentence is None else routing_text.text_results(view)
        if results:
            st.subheader("Routing per token", divider="gray")
            routing_text.text_panel(results["routing"])
            downloads(f"routing-{model}", results, main="routing/weights", table=routing_text.table(results),
                      key="routing", source=input_identity(texts=[sentence]))
            with share_slot:
                view = share_button(view, title=f"Routing · {model} · text", inputs={},
                                    results=results, models=(model,))
            binding.publish(view)
    st.stop()

view = binding.settle(bound, RoutingView(model, picked.ref, block, expert, token, ablate, ig))
binding.publish(view)

with output:
    share_slot = st.container()  # Share sits at the top of the results, as on every page
    blocks, n_experts, k = page.moe_layout(model)
    st.caption(f"{model}: {n_experts} experts, top-{k} gating, MoE layers in blocks {', '.join(map(str, blocks))}.")
    results = None if no_input(picked) else page.routing_results(view, picked.pixels)
    if results:
        st.subheader("Routing per layer", divider="gray")
        page.routing_panel(results["routing"])
        if "load" in results:
            st.subheader("Expert load over the held-out set", divider="gray")
            page.load_panel(results["load"], block)
            st.subheader("What each expert responds to", divider="gray")
            page.top_patches_panel(results["load"], block)
        if "gate" in results:
            st.subheader("Attribution through the router", divider="gray")
            page.gate_panel(results["gate"])
        if "ablation" in results:
            st.subheader("Ablate an expert", divider="gray")
            page.ablation_panel(results["ablation"])
        downloads(f"routing-{model}", results, main="routing/gates", table=page.table(results), key="routing",
                  source=input_identity(picked.ref))
        with share_slot:
            view = share_button(view, title=f"Routing · {model} · {picked.label}",
                                inputs={"pixels": picked.pixels}, results=results, models=(model,))
        binding.publish(view)
