"""The Attention page: attention maps per layer and head, rollout over the digit; for text models, two sentences.

A digit (or two sentences for a text model) through one model; every layer and head as small
multiples, the chosen head in full, rollout and gradient rollout over the image, and for text
the similarity attribution (LayerIG) as coloured tokens (the text panels: :mod:`app.features.attention_text`).

Link: ``/attention?model=vit-dot&sample=17&layer=2&head=1&head_fusion=max`` or
``/attention?model=minilm&a=A+man+plays+guitar.&b=Someone+makes+music.&layer=5&head=3``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import streamlit as st

from analyzers import AttentionParams, IGParams, field_specs
from app.charts import attention as charts
from app.features.attention_text import (
    FULL_MAP_TOKENS, OVERVIEW_BLOCKS, sentence_map, similarity, single_text_attention, single_text_overview,
    text_attention, token_blocks,
)
from app.links import binding
from app.links.catalogue import attention_models, is_text_classifier_model, is_text_model, target_labels
from app.links.codec import (
    MAX_INDEX, MAX_TEXT_CHARS, InputRef, Params, Query, QueryReader, defaults, params_object, read_params, read_text,
    saved_link, write_params,
)
from app.runtime import compute
from app.runtime.inputs import InputError, validate_text
from app.ui import messages, session
from app.ui.figures import show_built
from app.ui.pickers import input_picker, model_image_picker, text_picker
from app.ui.results import computed, results_for
from app.ui.sharing import downloads, input_identity, share_button
from app.ui.widgets import build_params

DEFAULT_MODEL = "vit-dot"
DEFAULT_TEXTS = ("A man is playing a guitar on stage.", "Someone performs music for a crowd.")
DEFAULT_TEXT = "The film was a delight from start to finish."  # a text classifier's one text (``?text=``)
CLASSIFIER_TEXT_CHARS = 4000  # long enough for 512 tokens


# --------------------------------------------------------------------------- link


def _attention_params() -> Params:
    return defaults(AttentionParams)


@dataclass(frozen=True)
class AttentionView:
    """The Attention page: a model, its input (a digit, or two sentences for text models), a layer and head.

    URL: ``?model=vit-dot&sample=17&layer=2&head=1`` or ``?model=minilm&a=...&b=...``, plus
    AttentionParams fields that differ from their defaults; ``?id=<link id>`` for a saved one.
    """

    PAGE: ClassVar[str] = "attention"

    model: str = DEFAULT_MODEL
    input: InputRef = InputRef()
    texts: tuple[str, str] = DEFAULT_TEXTS
    layer: int = 0
    head: int = 0
    params: Params = field(default_factory=_attention_params)
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[AttentionView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        _no_attention(r)
        model = r.choice("model", attention_models(), DEFAULT_MODEL, "attention model")
        ref = InputRef.read(r, uploads)
        if is_text_classifier_model(model):
            texts = (_classifier_text(r), "")
        else:
            texts = (read_text(r, "a", DEFAULT_TEXTS[0], "Sentence A"), read_text(r, "b", DEFAULT_TEXTS[1], "Sentence B"))
        layer = r.integer("layer", 0, MAX_INDEX, 0, "layer")
        head = r.integer("head", 0, MAX_INDEX, 0, "head")
        return cls(model, ref, texts, layer, head, read_params(r, AttentionParams)), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        shown = {"a": self.texts[0], "b": self.texts[1]} if is_text_model(self.model) else self.input.to_query()
        if is_text_classifier_model(self.model):
            shown = {"text": self.texts[0]}
        return {"model": self.model, **shown, "layer": str(self.layer), "head": str(self.head),
                **write_params(self.params, _attention_params())}

    def params_object(self) -> Any:
        """The validated AttentionParams of this view."""
        return params_object(AttentionParams, self.params)


def _no_attention(r: QueryReader) -> None:
    """A link naming a model that exists but has no attention (a ResNet) says so, instead of an empty page."""
    from model_zoo import all_models

    name = r.raw("model")
    spec = all_models().get(name) if name else None
    if spec is not None and name not in attention_models():
        arch = spec.extra.get("architecture") or spec.family
        r.problems.append(f"{name} has no attention to show: it is a {arch} without attention layers (convolutions "
                          "only, for instance). Its attributions are on the Attribution page; here is a model with "
                          "attention instead.")


def _classifier_text(r: QueryReader) -> str:
    value = r.raw("text")
    if value is None:
        return DEFAULT_TEXT
    try:
        return validate_text(value, max_chars=CLASSIFIER_TEXT_CHARS)
    except InputError as e:
        r.problems.append(f"Text: {e} Showing the example text instead.")
        return DEFAULT_TEXT


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class AttentionInput:
    """What the Attention page analyses: a digit's pixels, or two sentences."""

    ref: InputRef
    texts: tuple[str, str]
    label: str
    pixels: np.ndarray | None = None  # (28, 28) for the zoo's digit models, (1, C, H, W) for a user's image model
    problem: str = ""  # why there is no digit yet (nothing uploaded, or the upload was refused)

    @property
    def is_text(self) -> bool:
        """True for two sentences, False for a digit."""
        return self.pixels is None and not self.problem


def attention_input(keys: session.WidgetKeys, seed: AttentionView, model: str,
                    host: Any = st) -> AttentionInput | None:
    """The input widgets that fit ``model``: two sentences for text, the digit picker for images.

    Returns None (after saying why) when a sentence is not acceptable.
    """
    from app.runtime.compute import spec_of
    from app.runtime.inputs import uses_model_preprocessing

    if is_text_classifier_model(model):
        text, problem = text_picker(keys, seed.texts[0] if seed.texts[1] == "" else DEFAULT_TEXT, model, host=host,
                                    max_chars=CLASSIFIER_TEXT_CHARS)
        if text is None:
            messages.error(problem)
            return None
        return AttentionInput(seed.input, (text, ""), "a text")
    if not is_text_model(model):
        image = uses_model_preprocessing(spec_of(model))
        picked = model_image_picker(keys, seed.input, model, host=host) if image else \
            input_picker(keys, seed.input, host=host)
        return AttentionInput(picked.ref, seed.texts, picked.label, picked.pixels, picked.problem)
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
        if not is_text_model(model) or is_text_classifier_model(model):
            labels = target_labels(model)
            targets = [-1, *range(len(labels))]
            values["target"] = host.selectbox(
                "target", targets, help="The class the gradient rollout explains",
                key=keys.key("attention.target", current.target, targets),
                format_func=lambda i: "predicted class" if i < 0 else f"{i} ({labels[i]})")
    return build_params(AttentionParams, values, current)


# --------------------------------------------------------------------------- results


def attention_results(view: AttentionView, source: AttentionInput, params: Any) -> dict[str, Any] | None:
    """The view's saved results, or its attention maps (and, for text, the similarity attribution)."""
    return results_for(view.link, lambda: _compute_attention(view.model, source, params))


def _compute_attention(model: str, source: AttentionInput, params: Any) -> dict[str, Any] | None:
    classifier = is_text_classifier_model(model)
    inputs = ([source.texts[0]] if classifier else list(source.texts)) if source.is_text else source.pixels
    maps = computed(f"Attention maps of {model}…", lambda: compute.run("attention_maps", model, params, inputs))
    if maps is None or not source.is_text:
        return None if maps is None else {"attention": maps}
    if classifier:  # which words decide the class: layer IG through the embeddings, for the same target
        from analyzers.text_classification import TextIGParams

        ig = TextIGParams(target=params.target)
        words = computed("Token attribution (Layer Integrated Gradients)…",
                         lambda: compute.run("integrated_gradients", model, ig, inputs))
        return {"attention": maps} if words is None else {"attention": maps, "words": words}
    a, b = source.texts
    similarity = computed("Similarity attribution (Layer Integrated Gradients)…",
                          lambda: compute.run("integrated_gradients", model, IGParams(), [(a, b), (b, a)]))
    return {"attention": maps} if similarity is None else {"attention": maps, "similarity": similarity}


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
    keys = session.WidgetKeys(AttentionView.PAGE)  # seeded by the full run: never re-seeded here
    share_slot = st.container()  # Share sits at the top of the results, as on every page
    result = results["attention"]
    L, _, H = result.attentions.shape[:3]
    left, right = st.columns(2)
    layer = left.selectbox("Layer", list(range(L)), key=keys.key("layer", 0, list(range(L))))
    head = right.selectbox("Head", list(range(H)), key=keys.key("head", 0, list(range(H))))
    view = binding.settle(bound, dataclasses.replace(view, layer=layer, head=head))
    binding.publish(view)
    if source.is_text and is_text_classifier_model(view.model):
        single_text_attention(result, layer, head, keys)
    elif source.is_text:
        text_attention(result, layer, head, keys)
        if "similarity" in results:
            similarity(results["similarity"])
    else:
        image_attention(result, layer, head)
    downloads(f"attention-{view.model}", results, main="attention/attentions",
              table=attention_table(results, layer, head), key="attention",
              source=input_identity(texts=source.texts) if source.is_text else input_identity(source.ref))
    inputs = {} if source.is_text else {"pixels": source.pixels}
    with share_slot:
        view = share_button(view, title=f"Attention · {view.model} · {source.label}", inputs=inputs,
                            results=results, models=(view.model,))
    binding.publish(view)


# --------------------------------------------------------------------------- panels


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
    labels = charts.token_labels(attn.shape[-1])
    pixels = _pixels(result)
    pred = int(result.predictions[0])
    g = math.isqrt(attn.shape[-1] - 1)
    named = result.info.model
    st.caption(f"Prediction: {_class_name(named, pred)}. Rows of a map are queries, columns keys; token 0 is CLS, "
               f"then the {g} × {g} patches row by row. Each row sums to 1.")
    where = f"{layer}-{head}"
    left, right = st.columns(2)
    with left:
        show_built(result, f"map-{where}", "Attention map", lambda: (
            charts.attention_map_chart(attn[layer, 0, head], labels, f"Layer {layer}, head {head}"),
            charts.map_frame(attn[layer, 0, head], labels)), slot="head-map")
    with right:
        show_built(result, f"cls-{where}", "CLS attention over the digit", lambda: (
            charts.overlay_chart(pixels, result.cls_maps[layer, 0, head], f"CLS row of layer {layer}, head {head}"),
            None),
            slot="head-cls")


def _class_name(model: str, index: int) -> str:
    labels = target_labels(model)
    return f"{index} ({labels[index]})" if 0 <= index < len(labels) and labels[index] != str(index) else str(index)


def _pixels(result: Any) -> np.ndarray:
    """The image under the maps: the digit (28, 28), or a user's image in grey at the CLS maps' side."""
    x = np.asarray(result.inputs[0])
    if x.shape == (1, 28, 28) or x.shape == (28, 28):
        return x.reshape(28, 28)
    from PIL import Image

    from app.charts.images import as_picture, luminance

    side = result.cls_maps.shape[-1] if result.cls_maps is not None else 28
    grey = Image.fromarray((np.clip(luminance(as_picture(x)), 0, 1) * 255).astype(np.uint8))
    return np.asarray(grey.resize((side, side), Image.Resampling.BOX), dtype=np.float32) / 255.0


def overview(results: dict[str, Any], source: AttentionInput) -> None:
    """What no layer or head choice changes, drawn after :func:`attention_panel` (outside its fragment): every head
    and the rollouts over an image; a text classifier's head statistics, rollout and word attributions."""
    result = results["attention"]
    if not source.is_text:
        image_overview(result)
    elif result.predictions[0] >= 0:  # a text classifier (MiniLM's two sentences have no class)
        single_text_overview(result, session.WidgetKeys(AttentionView.PAGE))
        if "words" in results:
            from app.features.attribution import word_attributions

            st.subheader("Which words decide the class", divider="gray")
            word_attributions(results["words"], title=f"Integrated Gradients on {result.info.model}", key="words")


def image_overview(result: Any) -> None:
    """Digit attention that no layer or head choice changes: every head at once, and the rollouts.

    Drawn by the page after :func:`attention_panel`, outside its fragment: another head does not
    send these charts again.
    """
    attn = result.attentions  # (L, B, H, T, T)
    pixels = _pixels(result)
    st.subheader("Every layer and head", divider="gray")
    grid = _patch_maps(attn)
    g = grid.shape[-1]
    st.caption(f"What CLS attends to on the {g} × {g} patch grid, over the image; one colour scale (square root, so "
               "that weak heads still show) for every head.")
    show_built(result, "grid", "CLS attention per layer and head", lambda: (
        charts.head_grid_chart(grid, pixels=pixels, cell=84), charts.grid_maps_frame(grid)))
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
            show_built(result, f"rollout-{i}", title, lambda: (
                charts.overlay_chart(pixels, heat[0], title, value_name="relevance", vmin=float(heat[0].min())), None))


def attention_table(results: dict[str, Any], layer: int, head: int) -> pd.DataFrame:
    """The chosen head's map(s) as a table (query, key, weight) for the CSV download."""
    result = results["attention"]
    frames = []
    for b in range(result.attentions.shape[1]):
        tokens = result.tokens[b] if result.tokens else ()
        m = sentence_map(result.attentions[layer, b, head], tokens) if tokens else result.attentions[layer, b, head]
        labels = charts.token_labels(m.shape[-1], tokens)
        if m.shape[-1] > FULL_MAP_TOKENS:  # a long text: its blocks (every weight is in the NPZ download)
            m, labels = token_blocks(m, labels, OVERVIEW_BLOCKS)
        frames.append(charts.map_frame(m, labels).assign(input=b, layer=layer, head=head))
    return pd.concat(frames, ignore_index=True)
