"""zooscope-example-plugin: registers ``example-mlp`` through the ``zooscope.models`` entry-point group."""

from __future__ import annotations

import json
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"


def models():
    """The plugin's model specs (the entry point zooscope calls)."""
    from model_zoo.spec import DIGIT_LABELS, InputSpec, ModelSpec

    from .mlp import DigitMLP, MLPConfig

    card_path = WEIGHTS / "example-mlp.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    yield ModelSpec(
        name="example-mlp", family="image-classifier", task="digit classification",
        description="A two-layer perceptron (784-128-10) from the example plugin, trained on the zoo's MNIST split.",
        paper="Rumelhart, Hinton & Williams 1986, Learning representations by back-propagating errors",
        input=InputSpec(modality="image", shape=(1, 28, 28), labels=DIGIT_LABELS,
                        normalisation="pixels in [0, 1], white digit on black; the model normalises inside"),
        config=MLPConfig(), builder=DigitMLP, capabilities=frozenset({"gradients", "classifier"}),
        checkpoint=str(WEIGHTS / "example-mlp.safetensors"), extra={"card": card},
    )
