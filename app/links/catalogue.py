"""The catalogue of allowed values: which models each page offers, which methods fit a model, what a target can name.

Found by a set test of each analyzer's needs against the models' capabilities, so a model that
joins the registry appears on every page that fits it. No streamlit: links are checked here.
"""

from __future__ import annotations

from analyzers import ANALYZERS, ATTRIBUTION_METHODS, params_to_mapping
from analyzers.latent import PROJECTIONS
from analyzers.text_classification import is_text_classifier, params_class_for
from app.links.codec import Params
from model_zoo import all_models, get_spec


def models_for(analyzer: str) -> tuple[str, ...]:
    """Models (zoo, the user's folders, plugins) that analyzer ``analyzer`` fits (set test of needs vs capabilities)."""
    entry = ANALYZERS[analyzer]
    return tuple(name for name, spec in all_models().items() if entry.fits(spec))


def image_models(needs: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Models (zoo, user, plugin) that take images and have every capability in ``needs``."""
    return tuple(n for n, s in all_models().items() if s.input.modality == "image" and s.supports(needs))


def attribution_models() -> tuple[str, ...]:
    """Image models that at least one attribution method fits, then the text classifiers (zoo and user)."""
    models = all_models()
    images = tuple(n for n in image_models() if any(m.fits(models[n]) for m in ATTRIBUTION_METHODS.values()))
    return images + text_classifiers()


def text_classifiers() -> tuple[str, ...]:
    """Models that classify text (the zoo's minilm-sentiment, the user's sequence classifiers)."""
    return tuple(n for n, s in all_models().items() if is_text_classifier(s))


def default_text_model() -> str:
    """The attribution views' text model: the zoo's fine-tuned minilm-sentiment once it is there, else minilm."""
    models = all_models()
    return "minilm-sentiment" if "minilm-sentiment" in models else "minilm"


def is_text_classifier_model(model: str) -> bool:
    """True when ``model`` classifies text (one text in, a class out)."""
    try:
        return is_text_classifier(get_spec(model))
    except KeyError:
        return False


def attribution_methods(model: str) -> tuple[str, ...]:
    """Attribution methods that fit ``model`` on image input."""
    spec = get_spec(model)
    return tuple(n for n, m in ATTRIBUTION_METHODS.items() if m.fits(spec) and spec.input.modality in m.modalities)


def target_labels(model: str) -> tuple[str, ...]:
    """What a model's attribution ``target`` can name: its classes, or its latent means for a VAE."""
    spec = get_spec(model)
    if "latent" in spec.capabilities:
        return tuple(f"z{k}" for k in range(spec.config.latent_dim))
    return tuple(spec.input.labels)


def params_class(method: str, model: str | None = None) -> type:
    """The params dataclass of an attribution method (on ``model``: TextIGParams for IG on a text classifier)."""
    default = ATTRIBUTION_METHODS[method].params
    return params_class_for(method, get_spec(model), default) if model else default


def default_params(method: str, model: str | None = None) -> Params:
    """The canonical default params of a method (on ``model``, see :func:`params_class`)."""
    return tuple(params_to_mapping(params_class(method, model)()).items())


def attention_models() -> tuple[str, ...]:
    """Every model whose attention maps can be drawn: the digit ViTs and the text encoder."""
    return models_for("attention_maps")


def synthesizer_models() -> tuple[str, ...]:
    """The image models with attention (dot-product and every Synthesizer variant), in zoo order."""
    return tuple(m for m in attention_models() if get_spec(m).input.modality == "image"
                 and get_spec(m).family in ("attention", "synthesizer"))  # not the MoE ViTs


def latent_models() -> tuple[str, ...]:
    """The models with a latent space (the VAEs)."""
    return models_for("latent_projection")


def capsule_models() -> tuple[str, ...]:
    """The capsule networks."""
    return models_for("capsule_routing")


def routing_models() -> tuple[str, ...]:
    """The mixture-of-experts models whose expert routing can be drawn: vit-moe, then the user's text MoE folders."""
    return models_for("routing") + tuple(m for m in models_for("token_routing") if m not in models_for("routing"))


def dataset_models() -> tuple[str, ...]:
    """The classifiers a whole-dataset analysis runs on (accuracy needs classes, IG needs gradients): digit
    image classifiers, then text classifiers (CSV/JSONL texts; minilm-sentiment's held-out sentences)."""
    models = all_models()  # the held-out digits: models that read 1x28x28 with the ten digit labels
    return tuple(n for n in image_models(frozenset({"classifier", "gradients"}))
                 if models[n].input.shape == (1, 28, 28) and len(models[n].input.labels) == 10) + text_classifiers()


def sequence_models() -> tuple[str, ...]:
    """The sequence-to-sequence models whose decoding and alignment can be drawn (the G2P models)."""
    return models_for("sequence_alignment")


def generation_models() -> tuple[str, ...]:
    """The text-generating models (the user's sequence-to-sequence and causal-LM folders, SmolLM2)."""
    return models_for("generation_attention")


def has_weights(model: str) -> bool:
    """True when a model can be loaded: a pretrained package, or its checkpoint file is present."""
    path = get_spec(model).checkpoint_path
    return path is None or path.exists()


def is_text_model(model: str) -> bool:
    """True when ``model`` reads sentences rather than digit images."""
    return get_spec(model).input.modality == "text"


def latent_dim(model: str) -> int:
    """Size of a latent model's code, from its config."""
    return int(get_spec(model).config.latent_dim)


def projection_methods(model: str) -> tuple[str, ...]:
    """Projections that fit a latent model: identity only when its latent is already 2-D."""
    return tuple(m for m in PROJECTIONS if m != "identity" or latent_dim(model) == 2)


def default_projection(model: str) -> str:
    """identity for 2-D latents (nothing to project), PCA otherwise (instant)."""
    return "identity" if "identity" in projection_methods(model) else "pca"
