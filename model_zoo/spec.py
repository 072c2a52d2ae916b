"""Typed model specs: what the rest of zooscope needs to know without opening a model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from torch import nn

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
MANIFEST = "manifest.json"

FAMILIES = ("attention", "synthesizer", "vae", "capsule", "pretrained-text", "moe", "seq2seq",
            # issue 17: the user's own models (Hugging Face folders, plugins) and zoo models built on transformers
            "image-classifier", "text-classifier", "sentence-encoder", "causal-lm")

# What analyses a model supports; analyzers declare what they need and are matched by set test.
CAPABILITIES = frozenset({"gradients", "classifier", "attention", "latent", "capsules", "text", "routing",
                          "sequence", "generation"})  # sequence: G2P (one word in); generation: a text seq2seq or causal LM

DIGIT_LABELS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class InputSpec:
    """The input contract: modality, tensor shape, value range, and labels or tokenizer."""

    modality: str  # "image" | "text"
    shape: tuple[int, ...]  # per example, e.g. (1, 28, 28); () for text
    normalisation: str
    labels: tuple[str, ...] = ()
    tokenizer: str = ""


@dataclass(frozen=True)
class TrainRecipe:
    """How a model is trained: optimiser settings, epochs, augmentation, seed."""

    epochs: int
    lr: float
    batch_size: int = 128
    weight_decay: float = 0.0
    max_shift: int = 0  # random translation in pixels (augmentation)
    seed: int = 0


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry: identity, contract, how to build and train it, and what analyses fit."""

    name: str
    family: str
    task: str
    description: str
    paper: str
    input: InputSpec
    config: Any  # a frozen XConfig dataclass
    builder: Callable[[Any], nn.Module]
    capabilities: frozenset[str]
    checkpoint: str = ""  # file name under CHECKPOINT_DIR; "" for pretrained models loaded elsewhere
    recipe: TrainRecipe | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self):
        assert self.family in FAMILIES, self.family
        assert self.capabilities <= CAPABILITIES, self.capabilities - CAPABILITIES

    def supports(self, needs: frozenset[str] | set[str]) -> bool:
        """True when this model has every capability an analyzer needs."""
        return set(needs) <= self.capabilities

    @property
    def checkpoint_path(self) -> Path | None:
        return CHECKPOINT_DIR / self.checkpoint if self.checkpoint else None

    @property
    def card(self) -> dict[str, Any]:
        """What training recorded: sha256, held-out metrics, epochs, seconds, split, parameters."""
        if self.source != "zoo":  # user and plugin models carry their own card (never the zoo manifest's)
            return self.extra.get("card", {})
        return read_manifest().get(self.name, {})

    @property
    def source(self) -> str:
        """Where the model comes from: "zoo" (shipped), "folder" (a Hugging Face folder) or "plugin"."""
        return self.extra.get("source", "zoo")

    @property
    def sha256(self) -> str:
        """The weights' sha256: the manifest's for zoo models, over the folder's weights for user models."""
        return self.extra.get("sha256") or self.card.get("sha256", "")

    @property
    def metrics(self) -> dict[str, float]:
        return self.card.get("metrics", {})


@lru_cache(maxsize=1)
def _manifest_cached(path: str, mtime: float) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def read_manifest() -> dict[str, Any]:
    """The checkpoint manifest written by training (empty if there is none yet)."""
    path = CHECKPOINT_DIR / MANIFEST
    if not path.exists():
        return {}
    return _manifest_cached(str(path), path.stat().st_mtime)
