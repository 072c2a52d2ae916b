"""The Routing page: where a sparsely-gated mixture of experts sends each patch of a digit, and why.

Per MoE layer, each patch's top-k experts and gate weights drawn over the digit; the expert load
over the held-out set as a class x expert matrix with the paper's balance measures (coefficient
of variation of importance and load); each expert's most strongly routed patches; Integrated
Gradients of a gate logit (which pixels sent a patch to an expert, with completeness and the
routing switches on the path); and held-out accuracy per class with one expert removed.
Shazeer et al. 2017, https://arxiv.org/abs/1701.06538.

Link: ``/routing?model=vit-moe&sample=17&block=3&expert=5&token=25&ablate=2&ig.n_steps=128``
(-1 = the last MoE layer / the strongest choice).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import streamlit as st

from analyzers.routing import AblationParams, ExpertLoadParams, GateIGParams, RoutingParams
from analyzers.routing_results import token_name
from app.charts.attribution import attribution_chart
from app.charts.images import mosaic
from app.charts.routing import ablation_chart, class_load_chart, load_bars_chart, routing_map_chart
from app.features.routing_text import read_sentence
from app.links.catalogue import is_text_model, routing_models
from app.links.codec import (
    MAX_INDEX,
    InputRef,
    Params,
    Query,
    QueryReader,
    canonical,
    defaults,
    params_object,
    read_params,
    saved_link,
    write_params,
)
from app.runtime import compute
from app.ui import messages, session
from app.ui.figures import picture, show_built
from app.ui.results import computed, results_for
from app.ui.widgets import build_params, number_field
from model_zoo import get_spec

DEFAULT_MODEL = "vit-moe"

IG_FIELDS = ("n_steps", "method", "baseline")  # the gate IG's own settings; block, expert and token are the view's

N_TOKENS = 50  # CLS + 49 patches


def _ig_params() -> Params:
    return tuple((k, v) for k, v in defaults(GateIGParams) if k in IG_FIELDS)


# --------------------------------------------------------------------------- link


@dataclass(frozen=True)
class RoutingView:
    """The Routing page: a MoE model, a digit, the MoE layer looked into, the gate explained, the expert ablated.

    URL: ``?model=vit-moe&sample=17&block=3&expert=5&token=25&ablate=2`` with ``ig.n_steps``,
    ``ig.method`` and ``ig.baseline`` when they differ from their defaults. ``block=-1``: the
    last MoE layer; ``expert=-1``: the patch's first choice; ``token=-1``: the strongest patch.
    """

    PAGE: ClassVar[str] = "routing"

    model: str = DEFAULT_MODEL
    input: InputRef = InputRef()
    block: int = -1
    expert: int = -1
    token: int = -1
    ablate: int = 0
    ig: Params = field(default_factory=_ig_params)
    text: str = ""  # the sentence routed through a text MoE (the user's Mixtral / Qwen2-MoE / Switch folders)
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[RoutingView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        models = routing_models()
        model = r.choice("model", models, DEFAULT_MODEL if DEFAULT_MODEL in models else models[0], "MoE model")
        ref = InputRef.read(r, uploads)
        block = r.integer("block", -1, MAX_INDEX, -1, "block (the MoE layer's block; -1 = the last)")
        expert = r.integer("expert", -1, MAX_INDEX, -1, "expert (-1 = the patch's first choice)")
        token = r.integer("token", -1, N_TOKENS - 1, -1, "token (0 = CLS, 1-49 = patches; -1 = the strongest)")
        ablate = r.integer("ablate", 0, MAX_INDEX, 0, "ablate (the expert removed)")
        ig = read_params(r, GateIGParams, "ig", fields=IG_FIELDS)
        text = read_sentence(r) if is_text_model(model) else ""
        return cls(model, ref, block, expert, token, ablate, tuple((k, v) for k, v in ig if k in IG_FIELDS),
                   text), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        query = {"model": self.model, **self.input.to_query()}
        for name, default in (("block", -1), ("expert", -1), ("token", -1), ("ablate", 0)):
            if getattr(self, name) != default:
                query[name] = str(getattr(self, name))
        if self.text:
            query["text"] = self.text
        return {**query, **write_params(self.ig, _ig_params(), "ig")}

    def gate_params(self) -> Any:
        """GateIGParams: this view's gate (block, expert, token) with its IG settings."""
        return params_object(GateIGParams, (*self.ig, ("block", str(self.block)), ("expert", str(self.expert)),
                                            ("token", str(self.token))))

    def ablation_params(self) -> Any:
        return AblationParams(block=self.block, expert=self.ablate)


# --------------------------------------------------------------------------- settings


def moe_layout(model: str) -> tuple[tuple[int, ...], int, int]:
    """A MoE model's (MoE blocks, number of experts, k), from its config (no model loaded)."""
    cfg = get_spec(model).config
    return tuple(cfg.moe_blocks), int(cfg.n_experts), int(cfg.k)


def layer_picker(keys: session.WidgetKeys, model: str, seed: int, opened: bool, host: Any = st) -> int:
    """The MoE layer (by block) the lower panels look into; a link's block without one is reported."""
    blocks = moe_layout(model)[0]
    if opened and seed >= 0 and seed not in blocks:
        messages.error(f"{model} has no MoE layer in block {seed} (its MoE layers are in blocks "
                       f"{', '.join(map(str, blocks))}); showing block {blocks[-1]}.")
    seed = blocks[-1] if seed not in blocks else seed
    return host.selectbox("MoE layer (block)", list(blocks), key=keys.key("block", seed, list(blocks)),
                          help="The Transformer block whose MoE layer the panels below look into")


def expert_picker(keys: session.WidgetKeys, model: str, name: str, label: str, seed: int, opened: bool,
                  help: str, host: Any = st, auto: str = "") -> int:
    """An expert of the model (or -1 = ``auto`` when given); a link's expert that does not exist is reported."""
    n = moe_layout(model)[1]
    options = ([-1] if auto else []) + list(range(n))
    if opened and seed not in options:
        messages.error(f"{model} has experts 0 to {n - 1}, not {seed}; showing {options[0]}.")
    return host.selectbox(label, options, key=keys.key(name, seed, options), help=help,
                          format_func=lambda e: auto if e < 0 else f"expert {e}")


def token_picker(keys: session.WidgetKeys, seed: int, host: Any = st) -> int:
    """The token whose gate is explained: -1 = the strongest patch, 0 = CLS, 1..49 = patches row by row."""
    options = list(range(-1, N_TOKENS))
    return host.selectbox("Patch", options, key=keys.key("token", seed, options),
                          help="Whose gate logit is explained: a patch (row, column) of the 7 x 7 grid, or CLS",
                          format_func=lambda t: "the most strongly routed patch" if t < 0 else token_name(t))


def ig_settings(keys: session.WidgetKeys, seed: RoutingView, host: Any = st) -> Params:
    """n_steps, quadrature and baseline of the gate's Integrated Gradients."""
    current = seed.gate_params()
    with host.expander("Integrated Gradients settings"):
        steps = number_field(keys, "ig", "n_steps", current, host)
        method = host.selectbox("method", ["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right",
                                           "riemann_middle"], key=keys.key("ig.method", current.method))
        baseline = host.selectbox("baseline", ["black", "white", "blur", "uniform", "heldout_mean"],
                                  key=keys.key("ig.baseline", current.baseline if current.baseline != "custom"
                                               else "black"))
    params = build_params(GateIGParams, {"n_steps": steps, "method": method, "baseline": baseline}, current)
    return tuple((k, v) for k, v in canonical(params) if k in IG_FIELDS)


# --------------------------------------------------------------------------- results


def routing_results(view: RoutingView, pixels: np.ndarray) -> dict[str, Any] | None:
    """The view's saved results, or routing, held-out load, gate attribution and ablation computed."""
    return results_for(view.link, lambda: _compute(view, pixels))


def _compute(view: RoutingView, pixels: np.ndarray) -> dict[str, Any] | None:
    routed = computed(f"Routing through {view.model}…", lambda: compute.run("routing", view.model, RoutingParams(), pixels))
    if routed is None:
        return None
    results: dict[str, Any] = {"routing": routed}
    steps = [("load", "Routing the held-out set…", lambda: compute.run("expert_load", view.model, ExpertLoadParams())),
             ("gate", "Integrated Gradients of the gate…",
              lambda: compute.run("gate_attribution", view.model, view.gate_params(), pixels)),
             ("ablation", f"Removing expert {view.ablate}…",
              lambda: compute.run("expert_ablation", view.model, view.ablation_params()))]
    for part, what, work in steps:
        result = computed(what, work)
        if result is not None:
            results[part] = result
    return results


# --------------------------------------------------------------------------- panels


def routing_panel(result: Any) -> None:
    """Each MoE layer's routing over the digit (first-choice expert, gate in the tooltip) and its load."""
    pred = int(result.predictions[0])
    k, E = result.experts.shape[-1], result.gates.shape[-1]
    st.caption(f"Prediction **{result.labels[pred]}**. Each 4 x 4 patch is coloured by its first-choice expert "
               f"(opacity: its gate weight); the tooltip lists all {k} chosen experts with their gate weights, "
               "which sum to 1. Experts are numbered per layer: expert 3 of block 2 and expert 3 of block 3 are "
               "different networks.")
    pixels = np.asarray(result.inputs[0]).reshape(28, 28)
    cols = st.columns(len(result.blocks))
    for l, (col, block) in enumerate(zip(cols, result.blocks)):
        with col:
            show_built(result, f"routing-map-{block}", f"Routing in block {block}", lambda l=l, block=block: (
                routing_map_chart(pixels, result.experts[0, l], result.weights[0, l], E, f"Block {block}"), None))
            cls = ", ".join(f"{e} ({w:.2f})" for e, w in zip(result.experts[0, l, 0], result.weights[0, l, 0]))
            st.caption(f"CLS token → experts {cls}")
            show_built(result, f"routing-load-{block}", f"Tokens per expert, block {block}", lambda l=l, block=block: (
                load_bars_chart(result.load[0, l], f"Tokens per expert (of {N_TOKENS} x {k})"), None))


def load_panel(result: Any, block: int) -> None:
    """The class x expert load over the held-out set, and the coefficients of variation of importance and load."""
    l = list(result.blocks).index(block)
    cols = st.columns(len(result.blocks) + 1)
    cols[0].metric("Held-out accuracy", f"{result.accuracy:.1%}", help=f"On {result.n_examples} held-out images")
    for i, b in enumerate(result.blocks):
        cols[1 + i].metric(f"CV importance, block {b}", f"{result.cv_importance[i]:.3f}",
                           help="std / mean of the experts' summed gate weights (Shazeer et al. eq. 6); 0 = balanced")
        cols[1 + i].metric(f"CV load, block {b}", f"{result.cv_load[i]:.3f}",
                           help="std / mean of the tokens each expert receives (eq. 10, no noise); 0 = balanced")
    st.caption(f"Share of each class's token assignments that go to each expert in block {block}, over "
               f"{result.n_examples} held-out images (rows sum to 100 %).")
    show_built(result, f"class-load-{block}", f"Class x expert load, block {block}", lambda: (
        class_load_chart(result.class_load[l], result.labels, f"Class x expert, block {block}"), None))


def top_patches_panel(result: Any, block: int) -> None:
    """Each expert's most strongly routed patches across the held-out set (a row per expert)."""
    l = list(result.blocks).index(block)
    crops = result.top_crops[l]  # (E, n, 12, 12)
    picture(mosaic(crops, pad=2, scale=4, max_width=700),
            f"Block {block}: row e = expert e's {crops.shape[1]} patches with the largest gate weight "
            f"(the patch bright, 4 pixels of context dimmed).", key=f"top-patches-{block}")
    gates = result.top_gates[l]
    st.caption("Gate weights, row by row: " + "; ".join(
        f"expert {e}: {gates[e].min():.2f}–{gates[e].max():.2f}" for e in range(len(gates))))


def gate_panel(result: Any) -> None:
    """IG of the gate logit: which pixels sent the patch to the expert, with completeness and routing switches."""
    e, t, block = int(result.experts[0]), int(result.tokens[0]), result.block
    chosen = ", ".join(map(str, result.chosen[0]))
    st.caption(f"Integrated Gradients of the gate logit (x · W_g)_{e} of {token_name(t)} in block {block}: red pixels "
               f"raise it (send the patch towards expert {e}), blue ones lower it. The patch goes to experts "
               f"{chosen} (gate weight of expert {e}: {float(result.gate_weight[0]):.3f}).")
    left, right = st.columns([1.2, 1])
    with left:
        pixels = np.asarray(result.inputs[0]).reshape(28, 28)
        show_built(result, "gate-ig", "Gate attribution", lambda: (
            attribution_chart(pixels, np.asarray(result.attributions[0]).reshape(28, 28),
                              title=f"Expert {e} gate, {token_name(t)}"), None))
    with right:
        st.metric("Gate logit F(x)", f"{float(result.f_x[0]):.3f}", help="(x · W_g)_e at the input")
        st.metric("F(baseline)", f"{float(result.f_baseline[0]):.3f}")
        st.metric("Completeness error", f"{float(result.rel_error[0]):.2%}",
                  help="|sum of attributions − (F(x) − F(baseline))| / |F(x) − F(baseline)|; flagged above 5 %")
        st.metric("Routing switches on the path", int(result.routing_switches[0]),
                  help="Changes of the chosen experts, token by token, in the MoE layers before this one, "
                       "along the straight path from the baseline")
    if bool(result.flagged[0]):
        messages.warning(result.advice[0])
    elif int(result.routing_switches[0]):
        st.caption("The earlier layers' routing switched on the path, yet completeness holds here.")


def ablation_panel(result: Any) -> None:
    """Accuracy per class with all experts and with one removed from the routing."""
    cols = st.columns(3)
    cols[0].metric("Accuracy, all experts", f"{result.overall_before:.1%}")
    cols[1].metric(f"Without expert {result.expert}", f"{result.overall_after:.1%}",
                   delta=f"{100 * (result.overall_after - result.overall_before):+.1f} points")
    cols[2].metric("Tokens rerouted", f"{result.rerouted:.1%}", help="Share of this layer's held-out tokens that "
                   "had the expert among their top k; they go to their next best experts")
    show_built(result, f"ablation-{result.block}-{result.expert}", "Accuracy per class with an expert removed", lambda: (
        ablation_chart(result.labels, result.accuracy_before, result.accuracy_after, result.expert,
                       f"Block {result.block}: held-out accuracy per class"), None))
    st.caption(f"{result.changed} of {int(result.counts.sum())} held-out predictions change.")


def table(results: dict[str, Any]) -> pd.DataFrame:
    """Per MoE layer and token: the chosen experts and gate weights, for the CSV download."""
    r = results["routing"]
    rows = [{"block": int(b), "token": t, "name": token_name(t),
             **{f"expert_{j}": int(r.experts[0, l, t, j]) for j in range(r.experts.shape[-1])},
             **{f"gate_{j}": float(r.weights[0, l, t, j]) for j in range(r.experts.shape[-1])}}
            for l, b in enumerate(r.blocks) for t in range(r.experts.shape[2])]
    return pd.DataFrame(rows)
