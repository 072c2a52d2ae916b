"""Analyzer results: frozen dataclasses of CPU numpy arrays plus labels and run metadata.

Every result carries a :class:`RunInfo` (model, analyzer, canonical params, device, seconds)
and serialises losslessly through :func:`to_record` / :func:`from_record` into a JSON-safe
metadata dict and a dict of numpy arrays; the analysis store saves exactly that (no pickle).
Array shapes are documented per field: B examples, L layers, H heads, T tokens, D latent
dimensions, S steps, K curve points.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .routing_results import AblationResult, ExpertLoadResult, GateAttributionResult, RoutingResult, TokenRoutingResult
from .sequence_results import SequenceAttributionResult, SequenceResult

RECORD_VERSION = 1


@dataclass(frozen=True)
class RunInfo:
    """What ran: model name, analyzer name, canonical params, device and wall-clock seconds."""

    model: str
    analyzer: str
    params: dict[str, str]
    device: str
    seconds: float


@dataclass(frozen=True)
class AttributionResult:
    """Per-example attributions with the completeness check of the method (NaN where it has none).

    ``delta`` is captum's convergence delta, sum(attributions) - (F(x) - F(baseline));
    ``rel_error`` = |delta| / |F(x) - F(baseline)|; ``flagged`` marks examples whose
    rel_error exceeds 5%, and ``advice`` says what to change for them ("" otherwise).
    """

    info: RunInfo
    attributions: np.ndarray  # (B, 1, 28, 28) float32 for images, (B, T) token scores for text
    inputs: np.ndarray  # (B, 1, 28, 28) pixels in [0, 1], or (B, T) int64 token ids
    baselines: np.ndarray  # same shape as inputs: the baseline used (mean of the draws for uniform)
    targets: np.ndarray  # (B,) int64: class or latent index explained; -1 for text
    predictions: np.ndarray  # (B,) int64: argmax class for classifiers, -1 otherwise
    scores: np.ndarray  # (B, K) float32: class scores / latent means / cosine similarity
    f_x: np.ndarray  # (B,) float64: F(input)
    f_baseline: np.ndarray  # (B,) float64: F(baseline)
    delta: np.ndarray  # (B,) float64: convergence delta (NaN without completeness)
    rel_error: np.ndarray  # (B,) float64: |delta| / |F(x) - F(baseline)| (NaN without completeness)
    flagged: np.ndarray  # (B,) bool: rel_error > 5%
    advice: tuple[str, ...]  # per example, "" unless flagged
    labels: tuple[str, ...]  # names of the score columns
    target_label: str  # what F is, e.g. "logit of the class", "capsule length", "latent mean mu_k"
    tokens: tuple[tuple[str, ...], ...] = ()  # text only: the tokens of sentence A per example
    token_mask: np.ndarray | None = None  # (B, T) int64 attention mask for text
    routing_switches: np.ndarray | None = None  # (B,) int64 MoE models' IG: top-k routing changes along the path

    def summary(self) -> dict[str, Any]:
        """Scalars per example for printing: prediction, target, F values, delta, rel_error, flag."""
        switches = {} if self.routing_switches is None else {"routing_switches": self.routing_switches.tolist()}
        return {
            "prediction": self.predictions.tolist(), "target": self.targets.tolist(),
            "f_x": _floats(self.f_x), "f_baseline": _floats(self.f_baseline),
            "delta": _floats(self.delta), "rel_error": _floats(self.rel_error),
            "flagged": self.flagged.tolist(), **switches, "advice": list(self.advice),
        }


@dataclass(frozen=True)
class AttentionResult:
    """Attention probabilities per layer and head, their rollouts, and CLS maps for images."""

    info: RunInfo
    kind: str  # attention kind: dot, dense, random, factorized, mixture, minilm
    inputs: np.ndarray  # (B, 1, 28, 28) pixels or (B, T) int64 token ids
    attentions: np.ndarray  # (L, B, H, T, T) float32, rows sum to 1
    rollout: np.ndarray  # (B, T, T) Abnar & Zuidema 2020 rollout
    grad_rollout: np.ndarray | None  # (B, T, T) Chefer et al. 2021 relevance, None without gradients
    predictions: np.ndarray  # (B,) int64 (-1 for text)
    targets: np.ndarray  # (B,) int64 class used for the gradient rollout (-1 for text)
    cls_maps: np.ndarray | None = None  # (L, B, H, 28, 28) CLS row on the 7x7 grid, upsampled
    rollout_map: np.ndarray | None = None  # (B, 28, 28) CLS row of the rollout, upsampled
    grad_rollout_map: np.ndarray | None = None  # (B, 28, 28)
    mix_weights: np.ndarray | None = None  # (L, H, 2) mixture weights (random, dot)
    components: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (L, B, H, T, T)
    tokens: tuple[tuple[str, ...], ...] = ()
    token_mask: np.ndarray | None = None  # (B, T)

    def summary(self) -> dict[str, Any]:
        """Shape and predictions, for printing."""
        L, B, H, T, _ = self.attentions.shape
        return {"kind": self.kind, "layers": L, "heads": H, "tokens": T, "prediction": self.predictions.tolist()}


@dataclass(frozen=True)
class HeadStatsResult:
    """Per-head statistics over a set of inputs: entropy, mean attention distance, input-dependence."""

    info: RunInfo
    kind: str
    entropy: np.ndarray  # (L, H) nats, mean over query rows and inputs
    distance: np.ndarray  # (L, H) patch units (images, 7x7 grid) or token positions (text), CLS excluded
    dependence: np.ndarray  # (L, H) mean over query rows of sum over keys of the std across inputs
    n_inputs: int
    components: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. "dependence/dot": (L, H)

    def summary(self) -> dict[str, Any]:
        """Per-layer means of each statistic, for printing."""
        return {"kind": self.kind, "n_inputs": self.n_inputs, "entropy": _floats(self.entropy.mean(1)),
                "distance": _floats(self.distance.mean(1)), "dependence": _floats(self.dependence.mean(1))}


@dataclass(frozen=True)
class ProjectionResult:
    """A data set encoded to posterior means and variances, projected to 2-D."""

    info: RunInfo
    mu: np.ndarray  # (N, D) posterior means
    logvar: np.ndarray  # (N, D) posterior log-variances
    labels: np.ndarray  # (N,) int64 digit labels, -1 where unknown
    coords: np.ndarray  # (N, 2) float32 projection of mu
    method: str  # identity, pca, tsne, umap
    cached: bool  # True when the projection was read from the disk cache

    def summary(self) -> dict[str, Any]:
        """Size and method, for printing."""
        return {"n": int(self.mu.shape[0]), "latent_dim": int(self.mu.shape[1]), "method": self.method,
                "cached": self.cached}


@dataclass(frozen=True)
class GridResult:
    """Images decoded from a grid of latent codes over N(0, 1) quantiles in two dimensions."""

    info: RunInfo
    z: np.ndarray  # (n, n, D) latent codes, rows vary dims[1] (top = high), columns dims[0]
    images: np.ndarray  # (n, n, 28, 28) decoded pixels in [0, 1]
    quantiles: np.ndarray  # (n,) the values of the grid along each dimension
    dims: tuple[int, int]

    def summary(self) -> dict[str, Any]:
        """Grid size and dims, for printing."""
        return {"n": int(self.z.shape[0]), "dims": list(self.dims)}


@dataclass(frozen=True)
class TraversalResult:
    """Each latent dimension swept around an input's posterior mean, decoded."""

    info: RunInfo
    inputs: np.ndarray  # (B, 1, 28, 28)
    mu: np.ndarray  # (B, D)
    offsets: np.ndarray  # (S,) offsets in prior standard deviations
    images: np.ndarray  # (B, D, S, 28, 28)

    def summary(self) -> dict[str, Any]:
        """Sizes, for printing."""
        return {"inputs": int(self.inputs.shape[0]), "dims": int(self.mu.shape[1]), "steps": int(self.offsets.size)}


@dataclass(frozen=True)
class InterpolationResult:
    """Linear and spherical (slerp) paths between the posterior means of two inputs, decoded."""

    info: RunInfo
    inputs: np.ndarray  # (2, 1, 28, 28)
    t: np.ndarray  # (S,) in [0, 1]
    z_linear: np.ndarray  # (S, D)
    z_slerp: np.ndarray  # (S, D)
    images_linear: np.ndarray  # (S, 28, 28)
    images_slerp: np.ndarray  # (S, 28, 28)

    def summary(self) -> dict[str, Any]:
        """Steps, for printing."""
        return {"steps": int(self.t.size)}


@dataclass(frozen=True)
class LatentStatsResult:
    """KL per dimension, active units (Burda et al. 2016) and linear-probe accuracy on the means."""

    info: RunInfo
    kl_per_dim: np.ndarray  # (D,) mean KL(q(z_k|x) || N(0,1)) in nats
    mu_variance: np.ndarray  # (D,) Cov_x(E_q[z_k]), the activity statistic
    active: np.ndarray  # (D,) bool: mu_variance > threshold
    threshold: float
    probe_accuracy: float  # mean held-out accuracy over folds (NaN without labels)
    probe_std: float
    probe_folds: int
    n_inputs: int

    def summary(self) -> dict[str, Any]:
        """The headline numbers, for printing."""
        return {"kl_total": float(self.kl_per_dim.sum()), "active_units": int(self.active.sum()),
                "latent_dim": int(self.active.size), "probe_accuracy": _float(self.probe_accuracy)}


@dataclass(frozen=True)
class NoveltyResult:
    """Each input's negative ELBO under a VAE, in nats: how unlike the training digits it is."""

    info: RunInfo
    neg_elbo: np.ndarray  # (B,) float64: recon_nll + kl
    recon_nll: np.ndarray  # (B,) float64: -log p(x|z) under the Bernoulli decoder, summed over pixels
    kl: np.ndarray  # (B,) float64: KL(q(z|x) || N(0, I)), summed over latent dimensions
    reconstructions: np.ndarray  # (B, 28, 28) float32: decoded from the posterior mean
    samples: int  # draws of z for recon_nll; 0 = at the posterior mean

    def summary(self) -> dict[str, Any]:
        """The scores and their two terms, for printing."""
        return {"neg_elbo": _floats(self.neg_elbo), "recon_nll": _floats(self.recon_nll), "kl": _floats(self.kl),
                "samples": self.samples}


@dataclass(frozen=True)
class CapsuleResult:
    """Capsule lengths, routing coefficients of every iteration, and reconstructions."""

    info: RunInfo
    inputs: np.ndarray  # (B, 1, 28, 28)
    lengths: np.ndarray  # (B, 10) digit-capsule lengths
    predictions: np.ndarray  # (B,)
    targets: np.ndarray  # (B,) the class reconstructed in recon_target
    routing: np.ndarray  # (iters, B, 576, 10) c_ij per primary capsule, ordered (y, x, type)
    routing_grid: np.ndarray  # (iters, B, 6, 6, 10) mean over primary types at each grid position
    routing_types: np.ndarray  # (iters, B, 16, 10) mean over grid positions per primary type
    primary_lengths: np.ndarray  # (B, 6, 6, 16) |u_i| of each primary capsule
    recon_predicted: np.ndarray  # (B, 28, 28) decoded from the predicted class capsule
    recon_target: np.ndarray  # (B, 28, 28) decoded from the target class capsule
    labels: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        """Predictions and lengths, for printing."""
        return {"prediction": self.predictions.tolist(), "target": self.targets.tolist(),
                "lengths": [_floats(r) for r in self.lengths]}


@dataclass(frozen=True)
class PoseResult:
    """Images decoded from a class capsule's pose with each of its dimensions perturbed."""

    info: RunInfo
    inputs: np.ndarray  # (B, 1, 28, 28)
    targets: np.ndarray  # (B,) the capsule perturbed
    offsets: np.ndarray  # (S,) added to one pose dimension at a time
    images: np.ndarray  # (B, 16, S, 28, 28)

    def summary(self) -> dict[str, Any]:
        """Targets and grid size, for printing."""
        return {"target": self.targets.tolist(), "dims": int(self.images.shape[1]), "steps": int(self.offsets.size)}


@dataclass(frozen=True)
class CurvesResult:
    """Deletion and insertion curves for an attribution ordering and for random orderings."""

    info: RunInfo
    attribution_method: str
    unit: str  # pixel or patch
    fractions: np.ndarray  # (K,) fraction of units deleted / inserted, 0 .. 1
    deletion: np.ndarray  # (B, K) F as units are replaced by the baseline, most attributed first
    insertion: np.ndarray  # (B, K) F as units are restored onto the baseline
    random_deletion: np.ndarray  # (B, K) mean over seeds of random orderings
    random_insertion: np.ndarray  # (B, K)
    deletion_auc: np.ndarray  # (B,) lower is more faithful
    insertion_auc: np.ndarray  # (B,) higher is more faithful
    random_deletion_auc: np.ndarray  # (B,)
    random_insertion_auc: np.ndarray  # (B,)
    targets: np.ndarray  # (B,)

    def summary(self) -> dict[str, Any]:
        """The areas, for printing."""
        return {"deletion_auc": _floats(self.deletion_auc), "random_deletion_auc": _floats(self.random_deletion_auc),
                "insertion_auc": _floats(self.insertion_auc), "random_insertion_auc": _floats(self.random_insertion_auc)}


@dataclass(frozen=True)
class RandomisationResult:
    """Rank correlation of attributions as layers are re-initialised cumulatively from the top."""

    info: RunInfo
    attribution_method: str
    layers: tuple[str, ...]  # cascade order: the first is re-initialised first
    spearman: np.ndarray  # (n_layers, B) after re-initialising layers[: i + 1]
    attributions: np.ndarray  # (B, ...) of the trained model
    randomised: np.ndarray  # (n_layers, B, ...) after each cascade step
    targets: np.ndarray  # (B,)

    def summary(self) -> dict[str, Any]:
        """Mean rank correlation per cascade step, for printing."""
        return {"layers": list(self.layers), "spearman": _floats(self.spearman.mean(1))}


RESULT_TYPES: dict[str, type] = {c.__name__: c for c in (
    AttributionResult, AttentionResult, HeadStatsResult, ProjectionResult, GridResult, TraversalResult,
    InterpolationResult, LatentStatsResult, NoveltyResult, CapsuleResult, PoseResult, CurvesResult,
    RandomisationResult, RoutingResult, ExpertLoadResult, GateAttributionResult, AblationResult, TokenRoutingResult,
    SequenceResult, SequenceAttributionResult,
)}


def _float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _floats(a: np.ndarray) -> list[float | None]:
    return [_float(float(v)) for v in np.asarray(a).ravel()]


# ---------------------------------------------------------------------------------------------
# Records: JSON-safe metadata + a flat dict of arrays.

def to_record(result: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a result into JSON-safe metadata and named numpy arrays, losslessly.

    Array fields become ``arrays[name]``; dicts of arrays become ``arrays["name/key"]``;
    everything else (strings, numbers, tuples, the RunInfo) goes into the metadata, with
    non-finite floats spelled as {"float": "nan" | "inf" | "-inf"}.
    """
    if type(result).__name__ not in RESULT_TYPES:
        raise TypeError(f"{type(result).__name__} is not an analyzer result")
    meta: dict[str, Any] = {"type": type(result).__name__, "version": RECORD_VERSION, "fields": {}, "none": []}
    arrays: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if isinstance(value, np.ndarray):
            arrays[f.name] = value
        elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            arrays.update({f"{f.name}/{k}": v for k, v in value.items()})
        elif value is None:
            meta["none"].append(f.name)
        else:
            meta["fields"][f.name] = _encode(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value)
    return meta, arrays


def from_record(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """Rebuild a result from :func:`to_record`'s metadata and arrays."""
    cls = RESULT_TYPES.get(meta.get("type", ""))
    if cls is None or meta.get("version") != RECORD_VERSION:
        raise ValueError(f"not a version-{RECORD_VERSION} analyzer record: type={meta.get('type')!r}, "
                         f"version={meta.get('version')!r}")
    values: dict[str, Any] = {name: None for name in meta["none"]}
    for name, value in meta["fields"].items():
        values[name] = _decode(value)
    values["info"] = RunInfo(**values["info"])
    for key, array in arrays.items():
        name, _, sub = key.partition("/")
        if sub:
            values.setdefault(name, {})[sub] = array
        else:
            values[name] = array
    return cls(**values)


def _encode(value: Any) -> Any:
    """Tuples to lists, non-finite floats to markers, numpy scalars to Python ones."""
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def _decode(value: Any) -> Any:
    """Inverse of _encode: lists back to tuples (results hold tuples, never lists)."""
    if isinstance(value, dict):
        if set(value) == {"float"}:
            return float(value["float"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value
