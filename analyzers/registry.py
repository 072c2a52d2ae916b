"""Every analyzer in one explicit table, and the set test that says which fit a model."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from . import attention, capsules, faithfulness, latent, novelty, routing, sequence, token_routing
from .attribution import ATTRIBUTION_METHODS
from .generation import GENERATION_ANALYZERS
from .params import ParamError, Params
from .spec import Inputs, MethodSpec
from .text_classification import params_class_for

_BOTH = frozenset({"image", "text"})
_IMAGE = frozenset({"image"})
_WORD = frozenset({"word"})  # the G2P models read one word

ANALYZERS: MappingProxyType[str, MethodSpec] = MappingProxyType({
    **ATTRIBUTION_METHODS,
    "attention_maps": MethodSpec(
        "attention_maps", "Attention maps and rollout", attention.attention_maps, attention.AttentionParams,
        attention.ROLLOUT_PAPER, frozenset({"attention"}), _BOTH, "attention"),
    "head_statistics": MethodSpec(
        "head_statistics", "Head statistics", attention.head_statistics, attention.HeadStatsParams,
        attention.SYNTH_PAPER, frozenset({"attention"}), _BOTH, "attention"),
    "latent_projection": MethodSpec(
        "latent_projection", "Latent projection", latent.latent_projection, latent.ProjectionParams,
        latent.UMAP_PAPER, frozenset({"latent"}), _IMAGE, "latent"),
    "manifold_grid": MethodSpec(
        "manifold_grid", "Manifold grid", latent.manifold_grid, latent.GridParams,
        latent.VAE_PAPER, frozenset({"latent"}), _IMAGE, "latent"),
    "latent_traversal": MethodSpec(
        "latent_traversal", "Latent traversal", latent.latent_traversal, latent.TraversalParams,
        latent.VAE_PAPER, frozenset({"latent"}), _IMAGE, "latent"),
    "latent_interpolation": MethodSpec(
        "latent_interpolation", "Interpolation", latent.latent_interpolation, latent.InterpolationParams,
        latent.SLERP_PAPER, frozenset({"latent"}), _IMAGE, "latent"),
    "latent_statistics": MethodSpec(
        "latent_statistics", "KL, active units, linear probe", latent.latent_statistics, latent.LatentStatsParams,
        latent.BURDA_PAPER, frozenset({"latent"}), _IMAGE, "latent"),
    "novelty": MethodSpec(
        "novelty", "Novelty (negative ELBO)", novelty.novelty_score, novelty.NoveltyParams,
        latent.VAE_PAPER, frozenset({"latent"}), _IMAGE, "latent"),
    "capsule_routing": MethodSpec(
        "capsule_routing", "Capsule lengths and routing", capsules.capsule_routing, capsules.CapsuleParams,
        capsules.CAPSNET_PAPER, frozenset({"capsules"}), _IMAGE, "capsules"),
    "pose_perturbation": MethodSpec(
        "pose_perturbation", "Pose perturbation", capsules.pose_perturbation, capsules.PoseParams,
        capsules.CAPSNET_PAPER, frozenset({"capsules"}), _IMAGE, "capsules"),
    "routing": MethodSpec(
        "routing", "Expert routing per token", routing.routing, routing.RoutingParams,
        routing.SHAZEER_PAPER, frozenset({"routing"}), _IMAGE, "routing"),
    "expert_load": MethodSpec(
        "expert_load", "Expert load over the held-out set", routing.expert_load, routing.ExpertLoadParams,
        routing.SHAZEER_PAPER, frozenset({"routing"}), _IMAGE, "routing"),
    "gate_attribution": MethodSpec(
        "gate_attribution", "Integrated Gradients of a gate logit", routing.gate_attribution, routing.GateIGParams,
        routing.SHAZEER_PAPER, frozenset({"routing"}), _IMAGE, "routing"),
    "expert_ablation": MethodSpec(
        "expert_ablation", "Expert ablation", routing.expert_ablation, routing.AblationParams,
        routing.SHAZEER_PAPER, frozenset({"routing"}), _IMAGE, "routing"),
    "token_routing": MethodSpec(
        "token_routing", "Expert routing per token (router logits)", token_routing.token_routing,
        token_routing.TokenRoutingParams, routing.SHAZEER_PAPER, frozenset({"routing", "text"}), frozenset({"text"}),
        "routing"),
    "deletion_insertion": MethodSpec(
        "deletion_insertion", "Deletion and insertion curves", faithfulness.deletion_insertion,
        faithfulness.CurveParams, faithfulness.RISE_PAPER, frozenset({"gradients"}), _IMAGE, "faithfulness"),
    "randomisation_check": MethodSpec(
        "randomisation_check", "Model-randomisation check", faithfulness.randomisation_check,
        faithfulness.RandomisationParams, faithfulness.SANITY_PAPER, frozenset({"gradients"}), _IMAGE,
        "faithfulness"),
    "sequence_alignment": MethodSpec(
        "sequence_alignment", "Alignment and decoding step by step", sequence.sequence_alignment,
        sequence.SequenceParams, sequence.RAFFEL_PAPER, frozenset({"sequence"}), _WORD, "sequence"),
    "sequence_attribution": MethodSpec(
        "sequence_attribution", "Attribution of every output token", sequence.sequence_attribution,
        sequence.SequenceAttributionParams, sequence.IG_PAPER, frozenset({"sequence", "gradients"}), _WORD,
        "sequence"),
    **GENERATION_ANALYZERS,  # the user's seq2seq / causal-LM folders and SmolLM2: generate, attention, IG, contrast
})


def compatible(spec: Any) -> list[str]:
    """Names of the analyzers that fit a model (set test of needs against its capabilities)."""
    return [name for name, entry in ANALYZERS.items() if entry.fits(spec)]


def get_analyzer(name: str) -> MethodSpec:
    """The analyzer called ``name``; an unknown name gives the list of known ones."""
    try:
        return ANALYZERS[name]
    except KeyError:
        raise ParamError(f"unknown analyzer {name!r}; choose from {', '.join(ANALYZERS)}") from None


def run_analyzer(name: str, model, spec, inputs: Inputs, params: Params | None = None, **kwargs: Any) -> Any:
    """Run analyzer ``name`` on a model after checking that it fits; params default to the class defaults."""
    entry = get_analyzer(name)
    if not entry.fits(spec):
        raise ParamError(f"{entry.label} does not fit {spec.name}: it needs {sorted(entry.needs)} on "
                         f"{sorted(entry.modalities)} input; {spec.name} has {sorted(spec.capabilities)}")
    cls = params_class_for(name, spec, entry.params)  # TextIGParams for IG on a text classifier
    params = cls() if params is None else params
    if not isinstance(params, (cls, entry.params)):
        raise ParamError(f"{name} takes {cls.__name__}, not {type(params).__name__}")
    return entry.function(model, spec, inputs, params, **kwargs)
