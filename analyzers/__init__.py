"""zooscope analyzers: pure functions from (model, spec, inputs, params) to result dataclasses.

    from analyzers import ANALYZERS, compatible, attribute, IGParams
    spec = model_zoo.get_spec("vit-dot"); model = model_zoo.load("vit-dot")
    result = attribute(model, spec, images, "integrated_gradients", IGParams(n_steps=128))
    result.rel_error, result.flagged, result.advice     # the completeness check
    meta, arrays = to_record(result)                     # what the store saves

Every analyzer: ``fn(model, spec, inputs, params, **kwargs) -> XResult`` where results hold CPU
numpy arrays and a RunInfo. Params are frozen dataclasses with bounds (see ``params``).
No streamlit, no caching decorators, no hooks left on a model.
"""

from .attention import (
    AttentionParams, HeadStatsParams, attention_maps, gradient_rollout, head_statistics, rollout,
)
from .attribution import (
    ATTRIBUTION_METHODS, attribute, gradient_shap, input_x_gradient, integrated_gradients, occlusion, saliency,
    smoothgrad,
)
from .attribution_params import (
    GradientShapParams, IGParams, InputXGradientParams, OcclusionParams, SaliencyParams, SmoothGradParams,
)
from .capsules import CapsuleParams, PoseParams, capsule_routing, pose_perturbation, reconstruct_with_offsets
from .completeness import FLAG_THRESHOLD
from .faithfulness import CurveParams, RandomisationParams, deletion_insertion, randomisation_check
from .latent import (
    GridParams, InterpolationParams, LatentStatsParams, ProjectionParams, TraversalParams, cache_dir,
    latent_interpolation, latent_projection, latent_statistics, latent_traversal, manifold_grid,
    precompute_projections,
)
from .novelty import NoveltyParams, novelty_score
from .refine import Refinement, refine, refine_to_end
from .params import FieldSpec, ParamError, Params, field_specs, params_from_mapping, params_to_mapping
from .registry import ANALYZERS, compatible, get_analyzer, run_analyzer
from .results import (
    RESULT_TYPES, AttentionResult, AttributionResult, CapsuleResult, CurvesResult, GridResult, HeadStatsResult,
    InterpolationResult, LatentStatsResult, NoveltyResult, PoseResult, ProjectionResult, RandomisationResult, RunInfo,
    TraversalResult, from_record, to_record,
)
from .spec import Inputs, MethodSpec

__all__ = [
    "ANALYZERS", "ATTRIBUTION_METHODS", "FLAG_THRESHOLD", "RESULT_TYPES",
    "AttentionParams", "AttentionResult", "AttributionResult", "CapsuleParams", "CapsuleResult", "CurveParams",
    "CurvesResult", "FieldSpec", "GradientShapParams", "GridParams", "GridResult", "HeadStatsParams",
    "HeadStatsResult", "IGParams", "InputXGradientParams", "Inputs", "InterpolationParams", "InterpolationResult",
    "LatentStatsParams", "LatentStatsResult", "MethodSpec", "NoveltyParams", "NoveltyResult", "OcclusionParams",
    "ParamError", "Params", "PoseParams",
    "PoseResult", "ProjectionParams", "ProjectionResult", "RandomisationParams", "RandomisationResult", "RunInfo",
    "SaliencyParams", "SmoothGradParams", "TraversalParams", "TraversalResult",
    "attention_maps", "attribute", "cache_dir", "capsule_routing", "compatible", "deletion_insertion",
    "field_specs", "from_record", "get_analyzer", "gradient_rollout", "gradient_shap", "head_statistics",
    "input_x_gradient", "integrated_gradients", "latent_interpolation", "latent_projection", "latent_statistics",
    "latent_traversal", "manifold_grid", "novelty_score", "occlusion", "params_from_mapping", "params_to_mapping",
    "pose_perturbation", "precompute_projections", "randomisation_check", "reconstruct_with_offsets", "rollout",
    "Refinement", "refine", "refine_to_end",
    "run_analyzer", "saliency",
    "smoothgrad", "to_record",
]
