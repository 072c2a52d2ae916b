"""Share-link state of the exploration pages: Attention, Synthesizers, Latent space and Capsules.

One typed, frozen view per page, read from and written to the URL exactly like
``app.state.AttributionView``: every value is checked against an allow-list (the zoo's models
that fit the page's analyzer, the params dataclasses' bounds, the held-out set's size, the text
validator), and a bad value gives one message and the default, never an exception.

URLs (only values that differ from the defaults are written for params)::

    /attention?model=vit-dot&sample=17&layer=2&head=1&head_fusion=max
    /attention?model=minilm&a=A+man+plays+guitar.&b=Someone+makes+music.&layer=5&head=3
    /synthesizers?sample=300&layer=3&head=0&dependence=js
    /latent?model=vae-16d&proj.method=umap&sample=3&to=512&trav.k=2.0
    /capsules?sample=500&target=3&routing_class=5&pose.span=0.3

Layer and head indices are checked against generous bounds here and against
the model itself once its results exist (the page says when an index does not exist).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

from app.state import HELDOUT_SIZE, InputRef, Query, QueryReader, canonical, param_key

MAX_INDEX = 63  # layer / head / iteration bound in a link; the page checks the model's own sizes
MAX_TEXT_CHARS = 300  # per sentence; MiniLM reads at most 128 tokens anyway
DEFAULT_TEXTS = ("A man is playing a guitar on stage.", "Someone performs music for a crowd.")
DEFAULT_ATTENTION_MODEL = "vit-dot"
DEFAULT_LATENT_MODEL = "vae-2d"
DEFAULT_CAPSULE_MODEL = "capsnet"
DEFAULT_SECOND_SAMPLE = 700  # the other end of an interpolation (a 7 in the shipped split)


# --------------------------------------------------------------------------- allow-lists


def models_for(analyzer: str) -> tuple[str, ...]:
    """Zoo models that analyzer ``analyzer`` fits (set test of its needs against their capabilities)."""
    from analyzers import ANALYZERS
    from model_zoo import REGISTRY

    entry = ANALYZERS[analyzer]
    return tuple(name for name, spec in REGISTRY.items() if entry.fits(spec))


def attention_models() -> tuple[str, ...]:
    """Every model whose attention maps can be drawn: the digit ViTs and the text encoder."""
    return models_for("attention_maps")


def synthesizer_models() -> tuple[str, ...]:
    """The image models with attention (dot-product and every Synthesizer variant), in zoo order."""
    from model_zoo import get_spec

    return tuple(m for m in attention_models() if get_spec(m).input.modality == "image")


def latent_models() -> tuple[str, ...]:
    """The models with a latent space (the VAEs)."""
    return models_for("latent_projection")


def capsule_models() -> tuple[str, ...]:
    """The capsule networks."""
    return models_for("capsule_routing")


def has_weights(model: str) -> bool:
    """True when a model can be loaded: a pretrained package, or its checkpoint file is present."""
    from model_zoo import get_spec

    path = get_spec(model).checkpoint_path
    return path is None or path.exists()


def is_text_model(model: str) -> bool:
    """True when ``model`` reads sentences rather than digit images."""
    from model_zoo import get_spec

    return get_spec(model).input.modality == "text"


def latent_dim(model: str) -> int:
    """Size of a latent model's code, from its config."""
    from model_zoo import get_spec

    return int(get_spec(model).config.latent_dim)


def projection_methods(model: str) -> tuple[str, ...]:
    """Projections that fit a latent model: identity only when its latent is already 2-D."""
    from analyzers.latent import PROJECTIONS

    return tuple(m for m in PROJECTIONS if m != "identity" or latent_dim(model) == 2)


def default_projection(model: str) -> str:
    """identity for 2-D latents (nothing to project), PCA otherwise (instant)."""
    return "identity" if "identity" in projection_methods(model) else "pca"


# --------------------------------------------------------------------------- reading helpers


def _defaults(cls: type, **changes: Any) -> tuple[tuple[str, str], ...]:
    return canonical(cls(**changes))


def read_params(r: QueryReader, cls: type, prefix: str = "", base: tuple[tuple[str, str], ...] | None = None,
                fields: Container[str] | None = None) -> tuple[tuple[str, str], ...]:
    """Canonical params of ``cls`` from URL keys ``<prefix>.<field>`` (or the plain field names).

    Only ``fields`` are read from the URL when given. Each bad value is reported and left at
    its value in ``base`` (the class defaults when None).
    """
    from analyzers import ParamError, field_specs, params_from_mapping

    start = dict(base) if base is not None else dict(canonical(cls()))
    good: dict[str, str] = {}
    for spec in field_specs(cls):
        if fields is not None and spec.name not in fields:
            continue
        key = f"{prefix}.{spec.name}" if prefix else param_key(spec.name)
        value = r.raw(key) if r.has(key) else None
        if value is None:
            continue
        try:
            params_from_mapping(cls, {spec.name: value})
            good[spec.name] = value
        except ParamError as e:
            r.problems.append(f"{e}. Using {start[spec.name]}.")
    try:
        return canonical(params_from_mapping(cls, {**start, **good}))
    except ParamError as e:  # fine one by one, not together
        r.problems.append(f"{e}. Using the defaults.")
        return canonical(params_from_mapping(cls, start))


def write_params(params: tuple[tuple[str, str], ...], defaults: tuple[tuple[str, str], ...],
                 prefix: str = "") -> dict[str, str]:
    """URL keys for the params that differ from ``defaults``."""
    base = dict(defaults)
    return {(f"{prefix}.{k}" if prefix else param_key(k)): v for k, v in params if base.get(k) != v}


def read_text(r: QueryReader, key: str, default: str, what: str) -> str:
    """A sentence from the URL, validated like typed text; a bad one is reported and replaced."""
    from app.inputs import InputError, validate_text

    value = r.raw(key)
    if value is None:
        return default
    try:
        return validate_text(value, max_chars=MAX_TEXT_CHARS)
    except InputError as e:
        r.problems.append(f"{what}: {e} Showing the example sentence instead.")
        return default


def params_object(cls: type, params: tuple[tuple[str, str], ...]) -> Any:
    """The validated params dataclass behind a view's canonical params."""
    from analyzers import params_from_mapping

    return params_from_mapping(cls, dict(params))


def _saved_link(cls: type, r: QueryReader) -> tuple[Any, tuple[str, ...]] | None:
    """A view that only names a saved analysis (``?id=``), or None when the URL has no id."""
    link = r.link_id()
    if link is None:
        return None
    r.used.update(r.query)  # a saved analysis is the whole view; its other keys are ignored
    return cls(link=link), r.finish()


# --------------------------------------------------------------------------- views


def _attention_params() -> tuple[tuple[str, str], ...]:
    from analyzers import AttentionParams

    return _defaults(AttentionParams)


@dataclass(frozen=True)
class AttentionView:
    """The Attention page: a model, its input (a digit, or two sentences for text models), a layer and head.

    URL: ``?model=vit-dot&sample=17&layer=2&head=1`` or ``?model=minilm&a=...&b=...``, plus
    AttentionParams fields that differ from their defaults; ``?id=<link id>`` for a saved one.
    """

    PAGE: ClassVar[str] = "attention"

    model: str = DEFAULT_ATTENTION_MODEL
    input: InputRef = InputRef()
    texts: tuple[str, str] = DEFAULT_TEXTS
    layer: int = 0
    head: int = 0
    params: tuple[tuple[str, str], ...] = field(default_factory=_attention_params)
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[AttentionView, tuple[str, ...]]:
        from analyzers import AttentionParams

        r = QueryReader(query)
        saved = _saved_link(cls, r)
        if saved is not None:
            return saved
        model = r.choice("model", attention_models(), DEFAULT_ATTENTION_MODEL, "attention model")
        ref = InputRef.read(r, uploads)
        texts = (read_text(r, "a", DEFAULT_TEXTS[0], "Sentence A"), read_text(r, "b", DEFAULT_TEXTS[1], "Sentence B"))
        layer = r.integer("layer", 0, MAX_INDEX, 0, "layer")
        head = r.integer("head", 0, MAX_INDEX, 0, "head")
        return cls(model, ref, texts, layer, head, read_params(r, AttentionParams)), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        shown = {"a": self.texts[0], "b": self.texts[1]} if is_text_model(self.model) else self.input.to_query()
        return {"model": self.model, **shown, "layer": str(self.layer), "head": str(self.head),
                **write_params(self.params, _attention_params())}

    def params_object(self) -> Any:
        """The validated AttentionParams of this view."""
        from analyzers import AttentionParams

        return params_object(AttentionParams, self.params)


def _head_stats_params() -> tuple[tuple[str, str], ...]:
    from analyzers import HeadStatsParams

    return _defaults(HeadStatsParams)


@dataclass(frozen=True)
class SynthesizerView:
    """The Synthesizers page: one digit through every image attention model, one layer and head.

    URL: ``?sample=300&layer=3&head=0&dependence=js`` (HeadStatsParams fields that differ).
    """

    PAGE: ClassVar[str] = "synthesizers"

    input: InputRef = InputRef()
    layer: int = 0
    head: int = 0
    stats: tuple[tuple[str, str], ...] = field(default_factory=_head_stats_params)
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[SynthesizerView, tuple[str, ...]]:
        from analyzers import HeadStatsParams

        r = QueryReader(query)
        saved = _saved_link(cls, r)
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
        from analyzers import HeadStatsParams

        return params_object(HeadStatsParams, self.stats)


# Latent page: the params of its four analyses, each under its own URL prefix.
LATENT_PARTS = {"proj": "ProjectionParams", "grid": "GridParams", "trav": "TraversalParams",
                "interp": "InterpolationParams"}


def latent_params_class(part: str) -> type:
    """The params dataclass of one part of the Latent page (``proj``, ``grid``, ``trav``, ``interp``)."""
    import analyzers

    return getattr(analyzers, LATENT_PARTS[part])


def latent_defaults(model: str, part: str) -> tuple[tuple[str, str], ...]:
    """Default params of one part for ``model`` (its projection default depends on the latent size)."""
    if part == "proj":
        return _defaults(latent_params_class(part), method=default_projection(model))
    return _defaults(latent_params_class(part))


def _latent_part(r: QueryReader, model: str, part: str) -> tuple[tuple[str, str], ...]:
    params = read_params(r, latent_params_class(part), part, latent_defaults(model, part))
    if part == "proj" and dict(params)["method"] not in projection_methods(model):
        r.problems.append(f"{model} has a {latent_dim(model)}-D latent, so it needs a projection: "
                          f"choose one of {', '.join(projection_methods(model))}. Showing "
                          f"{default_projection(model)}.")
        return tuple((k, default_projection(model) if k == "method" else v) for k, v in params)
    if part == "grid":
        return _checked_grid_dims(r, model, params)
    return params


def _checked_grid_dims(r: QueryReader, model: str, params: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    values = dict(params)
    d = latent_dim(model)
    if int(values["dim_x"]) < d and int(values["dim_y"]) < d and values["dim_x"] != values["dim_y"]:
        return params
    r.problems.append(f"The manifold grid needs two different latent dimensions of {model}, 0 to {d - 1}; "
                      "showing dimensions 0 and 1.")
    return tuple((k, {"dim_x": "0", "dim_y": "1"}.get(k, v)) for k, v in params)


@dataclass(frozen=True)
class LatentView:
    """The Latent space page: a VAE, how its latent is projected, an input and the other end of a path.

    URL: ``?model=vae-16d&proj.method=umap&sample=3&to=512`` with ``grid.*``, ``trav.*`` and
    ``interp.*`` params that differ from their defaults.
    """

    PAGE: ClassVar[str] = "latent"

    model: str = DEFAULT_LATENT_MODEL
    input: InputRef = InputRef()
    other: int = DEFAULT_SECOND_SAMPLE  # held-out index at the far end of the interpolation
    parts: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # (part, params); missing = defaults
    link: str | None = None

    def __post_init__(self) -> None:
        given = dict(self.parts)  # canonical form: every part, in LATENT_PARTS order
        object.__setattr__(self, "parts", tuple((p, given.get(p) or latent_defaults(self.model, p))
                                                for p in LATENT_PARTS))

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[LatentView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = _saved_link(cls, r)
        if saved is not None:
            return saved
        model = r.choice("model", latent_models(), DEFAULT_LATENT_MODEL, "latent model")
        ref = InputRef.read(r, uploads)
        other = r.integer("to", 0, HELDOUT_SIZE - 1, DEFAULT_SECOND_SAMPLE, "to (the other end of the path)")
        parts = tuple((part, _latent_part(r, model, part)) for part in LATENT_PARTS)
        return cls(model, ref, other, parts), r.finish()

    def params(self, part: str) -> tuple[tuple[str, str], ...]:
        """Canonical params of one part."""
        return dict(self.parts)[part]

    def params_object(self, part: str) -> Any:
        """The validated params dataclass of one part."""
        return params_object(latent_params_class(part), self.params(part))

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        query = {"model": self.model, **self.input.to_query(), "to": str(self.other)}
        for part in LATENT_PARTS:
            query.update(write_params(self.params(part), latent_defaults(self.model, part), part))
        return query


POSE_FIELDS = ("steps", "span")  # the pose perturbation's own settings; its target is the view's


def _pose_params() -> tuple[tuple[str, str], ...]:
    from analyzers import PoseParams

    return tuple((k, v) for k, v in _defaults(PoseParams) if k in POSE_FIELDS)


@dataclass(frozen=True)
class CapsuleView:
    """The Capsules page: a capsule network, a digit, the class capsule to decode, the class whose routing is drawn.

    URL: ``?sample=500&target=3&routing_class=5`` (-1 = the predicted class) with ``pose.steps``
    and ``pose.span`` when they differ from their defaults.
    """

    PAGE: ClassVar[str] = "capsules"

    model: str = DEFAULT_CAPSULE_MODEL
    input: InputRef = InputRef()
    target: int = -1
    routing_class: int = -1  # digit capsule whose routing coefficients are drawn; -1 = the predicted one
    pose: tuple[tuple[str, str], ...] = field(default_factory=_pose_params)  # steps and span (target apart)
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[CapsuleView, tuple[str, ...]]:
        from analyzers import PoseParams

        r = QueryReader(query)
        saved = _saved_link(cls, r)
        if saved is not None:
            return saved
        models = capsule_models()
        model = r.choice("model", models, DEFAULT_CAPSULE_MODEL if DEFAULT_CAPSULE_MODEL in models else models[0],
                         "capsule model")
        ref = InputRef.read(r, uploads)
        target = r.integer("target", -1, 9, -1, "target (the class capsule to decode; -1 = predicted)")
        routing_class = r.integer("routing_class", -1, 9, -1,
                                  "routing_class (the digit capsule whose routing is drawn; -1 = predicted)")
        pose = read_params(r, PoseParams, "pose", fields=POSE_FIELDS)
        return cls(model, ref, target, routing_class, tuple((k, v) for k, v in pose if k in POSE_FIELDS)), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        query = {"model": self.model, **self.input.to_query(), "target": str(self.target)}
        if self.routing_class != -1:
            query["routing_class"] = str(self.routing_class)
        return {**query, **write_params(self.pose, _pose_params(), "pose")}

    def capsule_params(self) -> Any:
        """CapsuleParams: reconstruct from this view's target capsule."""
        from analyzers import CapsuleParams

        return CapsuleParams(target=self.target)

    def pose_params(self) -> Any:
        """PoseParams: this view's steps and span, on its target capsule."""
        from analyzers import PoseParams

        return params_object(PoseParams, (*self.pose, ("target", str(self.target))))
