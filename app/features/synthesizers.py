"""The Synthesizers page: one digit through every image attention model, side by side.

Tay et al. 2020, Synthesizer: the same ViT with its attention logits computed five ways. Their
maps on one colour scale, each model's mean input-dependence beside its held-out accuracy (does
attention need token-token interaction, and what does dropping it cost?), the per-head
input-dependence over a fixed set of held-out digits, and the mixture's weights.

Link: ``/synthesizers?sample=300&layer=3&head=0&dependence=js`` (HeadStatsParams fields that differ).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import streamlit as st

from analyzers import AttentionParams, HeadStatsParams
from app.charts import attention as charts
from app.links.catalogue import has_weights, synthesizer_models
from app.links.codec import (
    MAX_INDEX, InputRef, Params, Query, QueryReader, defaults, params_object, read_params, saved_link, write_params,
)
from app.runtime import compute
from app.runtime.models import heldout_split, sample_pixels
from app.ui import messages, session
from app.ui.figures import built_once, show, show_built
from app.ui.pickers import index_picker
from app.ui.results import attempt, results_for
from model_zoo import get_spec

FIXED = 1e-6  # a head whose input-dependence stays below this is the same for every input
PROBE_PER_CLASS = 5  # held-out digits per class for head statistics

# What each kind of attention (ViTConfig.attention) computes its logits from (Tay et al. 2020, table 1).
INTERACTION = {
    "dot": "yes: q · k",
    "dense": "no: own token",
    "random": "no: a pattern",
    "factorized": "no: low-rank pattern",
    "mixture": "partly: pattern + q · k",
}
WITHOUT_INTERACTION = ("dense", "random", "factorized")
ACCURACY = "held-out accuracy (%)"
QUESTION = "Does attention need token-token interaction?"


# --------------------------------------------------------------------------- link


def _head_stats_params() -> Params:
    return defaults(HeadStatsParams)


@dataclass(frozen=True)
class SynthesizerView:
    """The Synthesizers page: one digit through every image attention model, one layer and head.

    URL: ``?sample=300&layer=3&head=0&dependence=js`` (HeadStatsParams fields that differ).
    """

    PAGE: ClassVar[str] = "synthesizers"

    input: InputRef = InputRef()
    layer: int = 0
    head: int = 0
    stats: Params = field(default_factory=_head_stats_params)
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[SynthesizerView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        ref = InputRef.read(r, uploads)
        layer = r.integer("layer", 0, MAX_INDEX, 0, "layer")
        head = r.integer("head", 0, MAX_INDEX, 0, "head")
        return cls(ref, layer, head, read_params(r, HeadStatsParams)), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        return {**self.input.to_query(), "layer": str(self.layer), "head": str(self.head),
                **write_params(self.stats, _head_stats_params())}

    def stats_object(self) -> Any:
        """The validated HeadStatsParams of this view."""
        return params_object(HeadStatsParams, self.stats)


# --------------------------------------------------------------------------- results


def heldout_probe_set(per_class: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_class`` held-out digits of every class: indices (N,) and pixels (N, 28, 28)."""
    y = heldout_split().y_heldout
    idx = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    pixels = np.stack([sample_pixels(int(i)) for i in idx])  # (N, 28, 28)
    return idx, pixels


def synthesizer_results(view: SynthesizerView, pixels: np.ndarray) -> dict[str, Any] | None:
    """Every image attention model's maps of ``pixels`` and head statistics, saved or computed.

    Results are named ``<model>.attention`` and ``<model>.stats``; a model that cannot run (no
    checkpoint yet) is left out with a warning.
    """
    return results_for(view.link, lambda: _compute_synthesizers(view, pixels))


def _compute_synthesizers(view: SynthesizerView, pixels: np.ndarray) -> dict[str, Any] | None:
    _, probe = heldout_probe_set(PROBE_PER_CLASS)
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
        maps, problem = attempt(f"{model}: attention maps…", lambda: compute.run("attention_maps", model, params,
                                                                                 pixels))
        if maps is not None:
            head_stats, problem = attempt(f"{model}: head statistics over {len(probe)} held-out digits…",
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


def layer_and_head(keys: session.WidgetKeys, seed: Any, attentions: np.ndarray, opened: bool) -> tuple[int, int]:
    """Layer and head pickers side by side, their options read from (L, B, H, T, T) attentions."""
    L, _, H = attentions.shape[:3]
    left, right = st.columns(2)
    layer = index_picker(keys, "layer", "layer", seed.layer, L, opened=opened, host=left)
    head = index_picker(keys, "head", "head", seed.head, H, opened=opened, host=right)
    return layer, head


def models_in(results: dict[str, Any]) -> list[str]:
    """The models that have results, in zoo order."""
    return [m for m in synthesizer_models() if f"{m}.attention" in results]


def is_fixed(stats: Any) -> bool:
    """True when no head of a model changes with its input (a Random or Factorized Synthesizer)."""
    return bool(np.nanmax(np.abs(stats.dependence)) < FIXED)


# --------------------------------------------------------------------------- panels


def synthesizer_maps(results: dict[str, Any], layer: int, head: int) -> None:
    """The chosen head of every model side by side on one colour scale, full map and over the digit."""
    models = models_in(results)
    maps = {m: results[f"{m}.attention"].attentions[layer, 0, head] for m in models}
    vmax = float(max(a.max() for a in maps.values()))
    labels = charts.token_labels(next(iter(maps.values())).shape[-1])
    st.caption(f"One colour scale for every map: 0 to {vmax:.3g} (the largest weight among them). "
               "Rows are queries, columns keys; token 0 is CLS.")
    owners = tuple(results[f"{m}.attention"] for m in models)
    show_built(owners, f"synth-maps-{layer}-{head}", "Maps side by side", lambda: (
        charts.facet_maps_chart(maps, labels, vmax, title=f"Layer {layer}, head {head}"),
        pd.concat([charts.map_frame(a, labels).assign(model=m) for m, a in maps.items()])))
    cls = {m: results[f"{m}.attention"].cls_maps[layer, 0, head] for m in models}
    cmax = float(max(a.max() for a in cls.values()))
    pixels = np.asarray(results[f"{models[0]}.attention"].inputs[0]).reshape(28, 28)
    st.caption("The CLS row of the same head over the digit, on one colour scale.")
    show_built(owners, f"synth-cls-{layer}-{head}", "CLS attention over the digit", lambda: (
        charts.facet_overlays_chart(pixels, cls, cmax), None))


def model_summary(results: dict[str, Any]) -> pd.DataFrame:
    """Each model's prediction, mean input-dependence and held-out accuracy in one table, and what they answer."""
    table = pd.DataFrame([_model_row(m, results) for m in models_in(results)])
    n = len(heldout_split().y_heldout)
    st.dataframe(table, hide_index=True, column_config={
        "token-token interaction": st.column_config.TextColumn("token-token", help=(
            "What the attention logits are computed from: query · key (token-token interaction), each token on its "
            "own (dense), or a learned pattern that is the same for every input (random, factorized)")),
        "attention": st.column_config.TextColumn(help="fixed: the same for every input (input-dependence 0)"),
        "mean input-dependence": st.column_config.NumberColumn("input-dependence", format="%.4g", help=(
            "Mean over every layer and head: 0 means the attention is the same for every input")),
        ACCURACY: st.column_config.NumberColumn("accuracy (%)", format="%.1f", help=(
            f"Accuracy on the {n:,} held-out digits, from the model's card (`zooscope evaluate NAME`)")),
        "predicts": st.column_config.NumberColumn(help="The class each model predicts for this digit")})
    answer = interaction_answer(table)
    if answer:
        st.markdown(f"**{QUESTION}** {messages.escape(answer)}")
    return table


def accuracy(model: str) -> float | None:
    """A model's held-out accuracy from its card (``ModelSpec.metrics``), or None when it has none."""
    value = (get_spec(model).metrics or {}).get("accuracy")
    return None if value is None else float(value)


def _model_row(model: str, results: dict[str, Any]) -> dict[str, Any]:
    stats = results[f"{model}.stats"]
    return {"model": model, "token-token interaction": INTERACTION.get(get_spec(model).config.attention, "?"),
            "attention": "fixed" if is_fixed(stats) else "depends on input",
            "mean input-dependence": float(np.mean(stats.dependence)), ACCURACY: _percent(accuracy(model)),
            "predicts": int(results[f"{model}.attention"].predictions[0])}


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def interaction_answer(table: pd.DataFrame) -> str:
    """:data:`QUESTION` answered from the models' held-out accuracies (in per cent): what dropping token-token
    interaction costs against dot-product attention. Empty when the numbers to answer it are missing."""
    kinds = {m: get_spec(m).config.attention for m in table["model"]}
    acc = {m: float(a) / 100 for m, a in zip(table["model"], table[ACCURACY]) if a is not None and np.isfinite(a)}
    dot = next((m for m in acc if kinds[m] == "dot"), None)
    without = [m for m in acc if kinds[m] in WITHOUT_INTERACTION]
    if dot is None or not without:
        return ""
    gap = {m: 100 * (acc[m] - acc[dot]) for m in acc if m != dot}  # percentage points against dot product
    worst, best = min(without, key=gap.__getitem__), max(without, key=gap.__getitem__)
    cost = (f"dropping it costs at most {-gap[worst]:.1f} points ({worst})" if gap[worst] < 0
            else "dropping it costs nothing here")
    if gap[best] > 0:
        cost += f", and {best} is {gap[best]:.1f} points more accurate without it"
    n = len(heldout_split().y_heldout)
    margin = 196 * np.sqrt(acc[dot] * (1 - acc[dot]) / n)  # 95% half-width of one accuracy, in points
    return (f"Held-out accuracy against dot-product attention ({dot}, {100 * acc[dot]:.1f}%): "
            + ", ".join(f"{m} {gap[m]:+.1f} points" for m in gap) + f". Without token-token interaction "
            f"({', '.join(without)}), {cost}. Each accuracy is measured on {n:,} held-out digits, good to about "
            f"±{margin:.1f} points (95%), so smaller differences may be chance.")


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
    show_built(owners, "synth-dependence", "Input-dependence per head", lambda: (
        charts.head_stat_chart(dependence, "dependence", title=f"Input-dependence per head ({measure})"),
        charts.stat_frame(dependence, "dependence")))
    table = built_once(owners, "synth-table", lambda: _stats_table(stats))
    st.dataframe(table, hide_index=True, height=240)
    return table


def _stats_table(stats: dict[str, Any]) -> pd.DataFrame:
    frames = []
    for m, s in stats.items():
        frame = charts.stat_frame({m: s.dependence}, "dependence")
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
        show(charts.mix_weights_chart(result.mix_weights, title=f"{m}: mixing weights"), f"{m} mixing weights",
             key=f"mix-{m}")
        stats = results[f"{m}.stats"]
        parts = {k.split("/", 1)[1]: v for k, v in stats.components.items() if k.startswith("dependence/")}
        if parts:
            st.caption("Input-dependence of each component on its own:")
            show(charts.head_stat_chart(parts, "dependence"), f"{m} component dependence", key=f"mix-dep-{m}",
                 data=charts.stat_frame(parts, "dependence"))
