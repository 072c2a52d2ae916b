"""Exports carry their provenance (model and checkpoint, input, typed params, version) under their own names."""

from __future__ import annotations

import io
import json

import numpy as np

from analyzers import IGParams, SaliencyParams
from app.charts.export import npz_bytes, record_json, slug
from app.links.codec import InputRef
from app.runtime import compute
from app.ui.figures import results_file
from app.ui.sharing import input_identity, provenance
from model_zoo import get_spec

PIXELS = np.zeros((28, 28), dtype=np.float32)
PIXELS[6:22, 12:16] = 1.0


def test_provenance_names_the_checkpoint_the_input_and_typed_params():
    results = {"attribution": compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=16), PIXELS),
               "other": compute.run("saliency", "capsnet", SaliencyParams(abs=False), PIXELS)}
    made = provenance(results, input_identity(InputRef(sample=17)))
    assert made["models"] == {"vit-dot": get_spec("vit-dot").sha256, "capsnet": get_spec("capsnet").sha256}
    assert made["input"]["held_out_index"] == 17 and made["input"]["split"]
    ig = made["analyses"]["attribution"]
    assert ig["analyzer"] == "integrated_gradients"
    assert ig["params"]["n_steps"] == 16 and ig["params"]["blur_sigma"] == 4.0, "numbers, not strings"
    assert made["analyses"]["other"]["params"]["abs"] is False
    assert made["zooscope"]
    assert input_identity(InputRef(upload="ab" * 32)) == {"upload_sha256": "ab" * 32}
    assert input_identity(texts=("A", "B")) == {"sentences": ["A", "B"]}


def test_the_npz_carries_the_json_and_loads_without_pickle():
    record = {"provenance": {"zooscope": "0.1.0", "models": {"vit-dot": "abc"}}}
    data = np.load(io.BytesIO(npz_bytes({"a/b": np.arange(3)}, record)), allow_pickle=False)
    assert json.loads(str(data["__meta__"])) == json.loads(record_json(record))
    assert data["a__b"].tolist() == [0, 1, 2]


def test_results_and_charts_download_under_different_names():
    # The Attribution page's heatmap is saved under its chart key; its results under the analysis's name.
    assert results_file("vit-dot-integrated_gradients") == "vit-dot-integrated-gradients-results"
    assert results_file("vit-dot-integrated_gradients") != slug("attribution")
