"""Render pieces of the Attention and Synthesizers pages: inputs, results and their panels.

Attention: a digit (or two sentences for a text model) through one model; every layer and
head as small multiples, the chosen head in full, rollout and gradient rollout over the
image, and for text the similarity attribution (LayerIG) as coloured tokens.
Synthesizers: one digit through every image attention model, their maps on one colour scale,
the per-head input-dependence over a fixed set of held-out digits, and the mixture's weights.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app import compute, messages, session, views
from app import explore_charts as ec
from app import explore_views as ev
from app.explore_state import (
    MAX_TEXT_CHARS, AttentionView, SynthesizerView, has_weights, is_text_model, synthesizer_models,
)
from app.state import InputRef

MAX_TOKENS = 128  # MiniLM's cap (model_zoo.minilm.MiniLMConfig.max_tokens)
FIXED = 1e-6  # a head whose input-dependence stays below this is the same for every input
PROBE_PER_CLASS = 5  # held-out digits per class for head statistics
GRID_WIDTH = 500  # px available to a row of small multiples


@dataclass(frozen=True)
class AttentionInput:
    """What the Attention page analyses: a digit's pixels, or two sentences."""

    ref: InputRef
    texts: tuple[str, str]
    label: str
    pixels: np.ndarray | None = None  # (28, 28) for image models

    @property
    def is_text(self) -> bool:
        """True for two sentences, False for a digit."""
        return self.pixels is None


# --------------------------------------------------------------------------- attention: inputs


def attention_input(keys: session.WidgetKeys, seed: AttentionView, model: str,
                    host: Any = st) -> AttentionInput | None:
    """The input widgets that fit ``model``: two sentences for text, the digit picker for images.

    Returns None (after saying why) when a sentence is not acceptable.
    """
    if not is_text_model(model):
        picked = views.input_picker(keys, seed.input, host=host)
        return AttentionInput(picked.ref, seed.texts, picked.label, picked.pixels)
    from app.inputs import InputError, validate_text

    texts = []
    for name, text in zip("AB", seed.texts):
        raw = host.text_area(f"Sentence {name}", key=keys.key(f"text.{name}", text), max_chars=MAX_TEXT_CHARS,
                             height=80, help="Shown exactly as typed; MiniLM reads at most 128 tokens.")
        try:
            texts.append(validate_text(raw, max_chars=MAX_TEXT_CHARS))
        except InputError as e:
            messages.error(f"Sentence {name}: {e}")
            return None
    return AttentionInput(seed.input, (texts[0], texts[1]), "two sentences")


def attention_params(keys: session.WidgetKeys, seed: AttentionView, model: str, host: Any = st) -> Any:
    """Rollout settings (AttentionParams) in an expander, seeded from the view.

    The explained class (``target``) is offered for digit models only: for sentences the
    gradient rollout explains the sentence embedding, whatever the target says.
    """
    from analyzers import AttentionParams, field_specs

    current = seed.params_object()
    specs = {s.name: s for s in field_specs(AttentionParams)}
    with host.expander("Rollout settings"):
        fusions = list(specs["head_fusion"].choices)
        values = {"head_fusion": host.selectbox("head_fusion", fusions, help=specs["head_fusion"].help,
                                                key=keys.key("attention.head_fusion", current.head_fusion, fusions)),
                  "gradient_rollout": host.checkbox(
                      "gradient_rollout", help=specs["gradient_rollout"].help,
                      key=keys.key("attention.gradient_rollout", current.gradient_rollout)),
                  "target": current.target}
        if not is_text_model(model):
            labels = views.labels_of(model)
            targets = [-1, *range(len(labels))]
            values["target"] = host.selectbox(
                "target", targets, help="The class the gradient rollout explains",
                key=keys.key("attention.target", current.target, targets),
                format_func=lambda i: "predicted class" if i < 0 else f"{i} ({labels[i]})")
    return ev.build_params(AttentionParams, values, current)


# --------------------------------------------------------------------------- attention: results


def attention_results(view: AttentionView, source: AttentionInput, params: Any) -> dict[str, Any] | None:
    """The view's saved results, or its attention maps (and, for text, the similarity attribution)."""
    return ev.results_for(view.link, lambda: _compute_attention(view.model, source, params))


def _compute_attention(model: str, source: AttentionInput, params: Any) -> dict[str, Any] | None:
    inputs = list(source.texts) if source.is_text else source.pixels
    maps = views.computed(f"Attention maps of {model}…", lambda: compute.run("attention_maps", model, params, inputs))
    if maps is None or not source.is_text:
        return None if maps is None else {"attention": maps}
    from analyzers import IGParams

    a, b = source.texts
    similarity = views.computed("Similarity attribution (Layer Integrated Gradients)…",
                                lambda: compute.run("integrated_gradients", model, IGParams(), [(a, b), (b, a)]))
    return {"attention": maps} if similarity is None else {"attention": maps, "similarity": similarity}


def layer_and_head(keys: session.WidgetKeys, seed: Any, attentions: np.ndarray, opened: bool) -> tuple[int, int]:
    """Layer and head pickers side by side, their options read from (L, B, H, T, T) attentions."""
    L, _, H = attentions.shape[:3]
    left, right = st.columns(2)
    layer = ev.index_picker(keys, "layer", "layer", seed.layer, L, opened=opened, host=left)
    head = ev.index_picker(keys, "head", "head", seed.head, H, opened=opened, host=right)
    return layer, head


def seed_layer_and_head(keys: session.WidgetKeys, seed: Any, attentions: np.ndarray, opened: bool) -> None:
    """Seed the layer and head pickers from the view (on a full run), reporting a link's index that does not exist.

    The pickers themselves are drawn by :func:`attention_panel`, which reruns on its own when
    one of them changes; seeding here keeps a fragment rerun from resetting them to the link's.
    """
    L, _, H = attentions.shape[:3]
    for name, value, count in (("layer", seed.layer, L), ("head", seed.head, H)):
        if opened and not 0 <= value < count:
            messages.error(f"This model has no {name} {value} (it has 0 to {count - 1}); showing {name} 0.")
        keys.key(name, value, list(range(count)))


@st.fragment
def attention_panel(bound: Any, view: AttentionView, source: AttentionInput, results: dict[str, Any]) -> None:
    """The layer and head pickers and everything drawn for them, the downloads and Share.

    A fragment: choosing another layer or head reruns only this part of the page (the inputs,
    the model, the cached attention maps and, for digits, :func:`image_overview` below it stay as
    they are). Call :func:`seed_layer_and_head` first in the same run.
    """
    from app import state

    keys = session.WidgetKeys(AttentionView.PAGE)  # seeded by the full run: never re-seeded here
    result = results["attention"]
    L, _, H = result.attentions.shape[:3]
    left, right = st.columns(2)
    layer = left.selectbox("Layer", list(range(L)), key=keys.key("layer", 0, list(range(L))))
    head = right.selectbox("Head", list(range(H)), key=keys.key("head", 0, list(range(H))))
    view = state.settle(bound, dataclasses.replace(view, layer=layer, head=head))
    state.publish(view)
    if source.is_text:
        text_attention(result, layer, head, keys)
        if "similarity" in results:
            similarity(results["similarity"])
    else:
        image_attention(result, layer, head)
    ev.downloads(f"attention-{view.model}", results, main="attention/attentions",
                 table=attention_table(results, layer, head), key="attention")
    inputs = {} if source.is_text else {"pixels": source.pixels}
    view = views.share_button(view, title=f"Attention · {view.model} · {source.label}", inputs=inputs,
                              results=results, models=(view.model,))
    state.publish(view)


# --------------------------------------------------------------------------- attention: panels


def _patch_maps(attentions: np.ndarray, b: int = 0) -> np.ndarray:
    """The CLS row of every layer and head on the patch grid: (L, B, H, T, T) -> (L, H, g, g)."""
    row = attentions[:, b, :, 0, 1:]  # (L, H, T-1)
    g = math.isqrt(row.shape[-1])
    return row.reshape(*row.shape[:2], g, g)


def image_attention(result: Any, layer: int, head: int) -> None:
    """Digit attention: the chosen head in full and over the image.

    The charts of every head share a layout, so another head updates the drawn charts in place.
    """
    attn = result.attentions  # (L, B, H, T, T)
    labels = ec.token_labels(attn.shape[-1])
    pixels = _pixels(result)
    pred = int(result.predictions[0])
    st.caption(f"Prediction: {pred}. Rows of a map are queries, columns keys; token 0 is CLS, then the 7 × 7 "
               "patches row by row. Each row sums to 1.")
    where = f"{layer}-{head}"
    left, right = st.columns(2)
    with left:
        ev.show_built(result, f"map-{where}", "Attention map", lambda: (
            ec.attention_map_chart(attn[layer, 0, head], labels, f"Layer {layer}, head {head}"),
            ec.map_frame(attn[layer, 0, head], labels)), slot="head-map")
    with right:
        ev.show_built(result, f"cls-{where}", "CLS attention over the digit", lambda: (
            ec.overlay_chart(pixels, result.cls_maps[layer, 0, head], f"CLS row of layer {layer}, head {head}"), None),
            slot="head-cls")


def _pixels(result: Any) -> np.ndarray:
    return np.asarray(result.inputs[0]).reshape(28, 28)


def image_overview(result: Any) -> None:
    """Digit attention that no layer or head choice changes: every head at once, and the rollouts.

    Drawn by the page after :func:`attention_panel`, outside its fragment: another head does not
    send these charts again.
    """
    attn = result.attentions  # (L, B, H, T, T)
    pixels = _pixels(result)
    st.subheader("Every layer and head", divider="gray")
    st.caption("What CLS attends to on the 7 × 7 patch grid, over the digit; one colour scale (square root, so that "
               "weak heads still show) for every head.")
    grid = _patch_maps(attn)
    ev.show_built(result, "grid", "CLS attention per layer and head", lambda: (
        ec.head_grid_chart(grid, pixels=pixels, cell=84), ec.grid_maps_frame(grid)))
    rollouts(result, pixels)


def rollouts(result: Any, pixels: np.ndarray) -> None:
    """Rollout (Abnar & Zuidema 2020) and gradient rollout (Chefer et al. 2021) over the digit."""
    st.subheader("Rollout", divider="gray")
    st.caption("Attention rollout multiplies the head-averaged maps (plus the residual identity) through the layers; "
               "the gradient rollout weights each head by the gradient of the explained class. Colours run from "
               "each map's smallest value (transparent) to its largest.")
    maps = {"Rollout (Abnar & Zuidema 2020)": result.rollout_map}
    if result.grad_rollout_map is not None:
        maps[f"Gradient rollout for class {int(result.targets[0])} (Chefer et al. 2021)"] = result.grad_rollout_map
    for i, (col, (title, heat)) in enumerate(zip(st.columns(2), maps.items())):
        with col:
            ev.show_built(result, f"rollout-{i}", title, lambda: (
                ec.overlay_chart(pixels, heat[0], title, value_name="relevance", vmin=float(heat[0].min())), None))


def _token_size(tokens: tuple[str, ...]) -> int:
    return min(420, max(160, 22 * len(tokens)))


def _sentence_map(attn: np.ndarray, tokens: tuple[str, ...]) -> np.ndarray:
    n = len(tokens)
    return attn[..., :n, :n]


def text_attention(result: Any, layer: int, head: int, keys: session.WidgetKeys) -> None:
    """Sentence attention: the chosen head per sentence with token axes, every head, rollouts."""
    attn = result.attentions  # (L, 2, H, T, T), padded to the longer sentence
    counts = [len(t) for t in result.tokens]
    st.caption(f"Tokens: sentence A {counts[0]}, sentence B {counts[1]} (with [CLS] and [SEP]; MiniLM reads at most "
               f"{MAX_TOKENS}). Rows are queries, columns keys; each row sums to 1.")
    charts, menus = st.columns(2), st.columns(2)  # the sentences' maps differ in height; their menus line up below
    for col, menu, name, b in zip(charts, menus, "AB", (0, 1)):
        with col:
            tokens = result.tokens[b]
            labels = ec.token_labels(len(tokens), tokens)
            m = _sentence_map(attn[layer, b, head], tokens)
            ev.show_built(result, f"text-map-{name}-{layer}-{head}", f"Attention map {name}", lambda: (
                ec.attention_map_chart(m, labels, f"Sentence {name}: layer {layer}, head {head}", token_axes=True,
                                       size=_token_size(tokens)), ec.map_frame(m, labels)), slot=f"text-map-{name}",
                menu=menu)
    st.subheader("Every layer and head", divider="gray")
    which = st.radio("Sentence", ("A", "B"), horizontal=True, key=keys.key("grid.sentence", "A", ("A", "B")))
    st.caption("Every head of every layer for one sentence, one colour scale (square root, so that weak weights "
               "still show). Hover a cell for its query and key tokens.")
    b = "AB".index(which)
    tokens = result.tokens[b]
    grid = _sentence_map(attn[:, b], tokens)  # (L, H, n, n)
    labels = ec.token_labels(len(tokens), tokens)
    cell = max(24, min(56, GRID_WIDTH // grid.shape[1]))
    ev.show_built(result, f"text-grid-{which}", "Attention per layer and head", lambda: (
        ec.head_grid_chart(grid, labels=labels, cell=cell), ec.grid_maps_frame(grid, labels)))
    st.subheader("Rollout", divider="gray")
    charts, menus = st.columns(2), st.columns(2)
    for col, menu, name, b in zip(charts, menus, "AB", (0, 1)):
        with col:
            tokens = result.tokens[b]
            labels = ec.token_labels(len(tokens), tokens)
            m = _sentence_map(result.rollout[b], tokens)
            ev.show_built(result, f"text-rollout-{name}", f"Rollout {name}", lambda: (
                ec.attention_map_chart(m, labels, f"Rollout, sentence {name}", token_axes=True,
                                       size=_token_size(tokens)), ec.map_frame(m, labels)), menu=menu)


def similarity(result: Any) -> None:
    """Which tokens make the two sentences similar: LayerIG of cos(A, B) per token, as coloured tokens."""
    st.subheader("Similarity attribution", divider="gray")
    st.caption("Layer Integrated Gradients on the word embeddings of each sentence, explaining the cosine similarity "
               "of the two sentence embeddings (the other sentence held fixed; baseline: [PAD] tokens). "
               "Red tokens raise the similarity, blue ones lower it. One colour scale for both sentences.")
    st.metric("cos(A, B)", f"{float(result.f_x[0]):.4f}")
    sentences = {f"Sentence {name}": (result.tokens[i], np.asarray(result.attributions[i][: len(result.tokens[i])]))
                 for i, name in enumerate("AB")}
    ev.show_built(result, "similarity", "Similarity attribution", lambda: (
        ec.token_attribution_chart(sentences),
        pd.concat([ec.token_attribution_frame(t, a).assign(sentence=n) for n, (t, a) in sentences.items()])))
    for i, name in enumerate("AB"):
        rel = float(result.rel_error[i])
        st.caption(f"Sentence {name}: Σ attributions {float(np.sum(result.attributions[i])):.4f}, "
                   f"cos − cos(baseline) {float(result.f_x[i] - result.f_baseline[i]):.4f}, "
                   f"completeness error {rel:.2%}.")
        if bool(result.flagged[i]):
            messages.warning(f"Sentence {name}: {result.advice[i]}")


def attention_table(results: dict[str, Any], layer: int, head: int) -> pd.DataFrame:
    """The chosen head's map(s) as a table (query, key, weight) for the CSV download."""
    result = results["attention"]
    frames = []
    for b in range(result.attentions.shape[1]):
        tokens = result.tokens[b] if result.tokens else ()
        m = _sentence_map(result.attentions[layer, b, head], tokens) if tokens else result.attentions[layer, b, head]
        frames.append(ec.map_frame(m, ec.token_labels(m.shape[-1], tokens)).assign(input=b, layer=layer, head=head))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- synthesizers


def synthesizer_results(view: SynthesizerView, pixels: np.ndarray) -> dict[str, Any] | None:
    """Every image attention model's maps of ``pixels`` and head statistics, saved or computed.

    Results are named ``<model>.attention`` and ``<model>.stats``; a model that cannot run (no
    checkpoint yet) is left out with a warning.
    """
    return ev.results_for(view.link, lambda: _compute_synthesizers(view, pixels))


def _compute_synthesizers(view: SynthesizerView, pixels: np.ndarray) -> dict[str, Any] | None:
    from analyzers import AttentionParams

    _, probe = ev.heldout_probe_set(PROBE_PER_CLASS)
    params, stats = AttentionParams(gradient_rollout=False), view.stats_object()
    models = [m for m in synthesizer_models() if has_weights(m)]
    untrained = [m for m in synthesizer_models() if m not in models]
    if untrained:
        messages.warning(f"Not trained yet, so left out: {', '.join(untrained)}. Run `zooscope train <model>` "
                         "to add them.")
    results: dict[str, Any] = {}
    left_out: list[str] = []
    progress = st.progress(0.0, text="Running the digit through every attention model…")
    for i, model in enumerate(models):
        maps, problem = ev.attempt(f"{model}: attention maps…", lambda: compute.run("attention_maps", model, params,
                                                                                    pixels))
        if maps is not None:
            head_stats, problem = ev.attempt(f"{model}: head statistics over {len(probe)} held-out digits…",
                                             lambda: compute.run("head_statistics", model, stats, probe))
        if problem:
            left_out.append(f"{model}: {problem}")
        else:
            results[f"{model}.attention"], results[f"{model}.stats"] = maps, head_stats
        progress.progress((i + 1) / len(models), text=f"{i + 1} of {len(models)} models")
    progress.empty()
    if left_out:
        messages.warning("Left out, because they could not run:\n\n" + "\n\n".join(f"• {p}" for p in left_out))
    return results or None


def models_in(results: dict[str, Any]) -> list[str]:
    """The models that have results, in zoo order."""
    return [m for m in synthesizer_models() if f"{m}.attention" in results]


def is_fixed(stats: Any) -> bool:
    """True when no head of a model changes with its input (a Random or Factorized Synthesizer)."""
    return bool(np.nanmax(np.abs(stats.dependence)) < FIXED)


def synthesizer_maps(results: dict[str, Any], layer: int, head: int) -> None:
    """The chosen head of every model side by side on one colour scale, full map and over the digit."""
    models = models_in(results)
    maps = {m: results[f"{m}.attention"].attentions[layer, 0, head] for m in models}
    vmax = float(max(a.max() for a in maps.values()))
    labels = ec.token_labels(next(iter(maps.values())).shape[-1])
    st.caption(f"One colour scale for every map: 0 to {vmax:.3g} (the largest weight among them). "
               "Rows are queries, columns keys; token 0 is CLS.")
    owners = tuple(results[f"{m}.attention"] for m in models)
    ev.show_built(owners, f"synth-maps-{layer}-{head}", "Maps side by side", lambda: (
        ec.facet_maps_chart(maps, labels, vmax, title=f"Layer {layer}, head {head}"),
        pd.concat([ec.map_frame(a, labels).assign(model=m) for m, a in maps.items()])))
    cls = {m: results[f"{m}.attention"].cls_maps[layer, 0, head] for m in models}
    cmax = float(max(a.max() for a in cls.values()))
    pixels = np.asarray(results[f"{models[0]}.attention"].inputs[0]).reshape(28, 28)
    st.caption("The CLS row of the same head over the digit, on one colour scale.")
    ev.show_built(owners, f"synth-cls-{layer}-{head}", "CLS attention over the digit", lambda: (
        ec.facet_overlays_chart(pixels, cls, cmax), None))
    st.dataframe(pd.DataFrame([_model_row(m, results) for m in models]), hide_index=True)


def _model_row(model: str, results: dict[str, Any]) -> dict[str, Any]:
    stats = results[f"{model}.stats"]
    return {"model": model, "predicts": int(results[f"{model}.attention"].predictions[0]),
            "attention": "fixed: the same for every input" if is_fixed(stats) else "depends on the input",
            "mean input-dependence": float(np.mean(stats.dependence))}


def fixed_patterns(results: dict[str, Any]) -> None:
    """Say plainly which models attend the same way to every input."""
    fixed = [m for m in models_in(results) if is_fixed(results[f"{m}.stats"])]
    if fixed:
        st.info(messages.escape(
            f"{', '.join(fixed)}: these maps are learned patterns, not computed from the digit: they are the same "
            "for every input (input-dependence exactly 0 on every head). What you see above is the pattern itself."),
            icon=":material/info:")


def head_statistics(results: dict[str, Any], view: SynthesizerView) -> pd.DataFrame:
    """Per-head input-dependence as a chart per model, and every statistic as a table; returns the table."""
    models = models_in(results)
    stats = {m: results[f"{m}.stats"] for m in models}
    n = next(iter(stats.values())).n_inputs
    measure = view.stats_object().dependence
    st.caption(f"Over {n} held-out digits ({PROBE_PER_CLASS} per class). Input-dependence "
               + ("(std): the spread of each row across the inputs, summed over keys, averaged over rows; 0 means the "
                  "head ignores its input." if measure == "std" else
                  "(js): the mean Jensen–Shannon divergence (nats) between two inputs' rows; 0 means the head "
                  "ignores its input."))
    dependence = {m: s.dependence for m, s in stats.items()}
    owners = tuple(stats.values())
    ev.show_built(owners, "synth-dependence", "Input-dependence per head", lambda: (
        ec.head_stat_chart(dependence, "dependence", title=f"Input-dependence per head ({measure})"),
        ec.stat_frame(dependence, "dependence")))
    table = ev.built_once(owners, "synth-table", lambda: _stats_table(stats))
    st.dataframe(table, hide_index=True, height=240)
    return table


def _stats_table(stats: dict[str, Any]) -> pd.DataFrame:
    frames = []
    for m, s in stats.items():
        frame = ec.stat_frame({m: s.dependence}, "dependence")
        frame["entropy (nats)"] = s.entropy.ravel()
        frame["distance (patches)"] = s.distance.ravel()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def mixture(results: dict[str, Any]) -> None:
    """The mixture synthesizer's learned per-head weights on its random and dot-product logits."""
    for m in models_in(results):
        result = results[f"{m}.attention"]
        if result.mix_weights is None:
            continue
        st.subheader("Mixture of synthesizers", divider="gray")
        st.caption(f"{m} mixes two sets of logits per head, softmax(a_random · R + a_dot · QKᵀ/√d); the weights "
                   "are learned, the same for every input.")
        ev.show(ec.mix_weights_chart(result.mix_weights, title=f"{m}: mixing weights"), f"{m} mixing weights",
                key=f"mix-{m}")
        stats = results[f"{m}.stats"]
        parts = {k.split("/", 1)[1]: v for k, v in stats.components.items() if k.startswith("dependence/")}
        if parts:
            st.caption("Input-dependence of each component on its own:")
            ev.show(ec.head_stat_chart(parts, "dependence"), f"{m} component dependence", key=f"mix-dep-{m}",
                    data=ec.stat_frame(parts, "dependence"))
