"""Contracts over the registry: every zoo model x every compatible analyzer runs, round-trips through
records, leaves no hooks and leaves the model as it was; importing analyzers does not import streamlit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import model_zoo
from analyzers import (
    ANALYZERS, ATTRIBUTION_METHODS, AttentionParams, CurveParams, GradientShapParams, HeadStatsParams, IGParams,
    OcclusionParams, ParamError, PoseParams, ProjectionParams, RandomisationParams, SmoothGradParams, compatible,
    from_record, run_analyzer, to_record,
)
from analyzers.run import hook_count, install_library_hooks

from .conftest import minilm, untrained

FAST = {
    "integrated_gradients": IGParams(n_steps=4),
    "smoothgrad": SmoothGradParams(nt_samples=2),
    "gradient_shap": GradientShapParams(n_samples=2, baseline_draws=2),
    "occlusion": OcclusionParams(window=14, stride=14),
    "attention_maps": AttentionParams(),
    "head_statistics": HeadStatsParams(),
    "latent_projection": ProjectionParams(method="pca"),
    "pose_perturbation": PoseParams(steps=3),
    "deletion_insertion": CurveParams(attribution="saliency", steps=4, random_seeds=1),
    "randomisation_check": RandomisationParams(attribution="saliency", max_layers=2),
}

IMAGE_PAIRS = [(n, a) for n, s in model_zoo.REGISTRY.items() if s.input.modality == "image" for a in compatible(s)]
TEXT_INPUTS = {"integrated_gradients": [("A cat sat.", "A dog sat.")], "attention_maps": ["A cat sat.", "Dogs run."],
               "head_statistics": ["A cat sat.", "Dogs run fast."]}


def _hook_state(model: torch.nn.Module) -> list:
    """Every forward/backward hook on every submodule, plus the global ones.

    transformers >= 5 puts inactive output-capturing hooks on a model at its first forward, any
    forward; they are the model's own, so they are installed before counting.
    """
    from torch.nn.modules import module as m

    install_library_hooks(model)
    return [hook_count(model), len(m._global_forward_hooks), len(m._global_forward_pre_hooks),
            len(m._global_backward_hooks)]


def _run_and_check(name: str, analyzer: str, model, inputs):
    spec = model_zoo.get_spec(name)
    params = FAST.get(analyzer) or ANALYZERS[analyzer].params()
    hooks = _hook_state(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    result = run_analyzer(analyzer, model, spec, inputs, params)
    assert _hook_state(model) == hooks, "hooks left on the model"
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()), "model weights changed"
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    return result


def _assert_round_trip(result):
    meta, arrays = to_record(result)
    json.dumps(meta, allow_nan=False)  # strictly JSON-safe
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    back = from_record(json.loads(json.dumps(meta)), {k: a.copy() for k, a in arrays.items()})
    meta2, arrays2 = to_record(back)
    assert meta2 == meta and arrays2.keys() == arrays.keys()
    for k in arrays:
        assert arrays2[k].dtype == arrays[k].dtype and arrays2[k].shape == arrays[k].shape
        assert arrays2[k].tobytes() == arrays[k].tobytes(), k  # bit-identical, NaNs included
    assert type(back) is type(result) and back.info == result.info


@pytest.mark.parametrize("name, analyzer", IMAGE_PAIRS)
def test_every_compatible_analyzer_runs_round_trips_and_leaves_no_trace(name, analyzer, digits):
    inputs = None if analyzer == "manifold_grid" else digits[:2]
    result = _run_and_check(name, analyzer, untrained(name), inputs)
    assert result.info.model == name and result.info.analyzer == analyzer and result.info.device == "cpu"
    assert result.info.seconds >= 0
    _assert_round_trip(result)


@pytest.mark.parametrize("analyzer", sorted(TEXT_INPUTS))
def test_minilm_analyzers_run_round_trip_and_leave_no_trace(analyzer):
    assert analyzer in compatible(model_zoo.get_spec("minilm"))
    _assert_round_trip(_run_and_check("minilm", analyzer, minilm(), TEXT_INPUTS[analyzer]))


def test_compatibility_is_a_set_test_on_capabilities():
    for spec in model_zoo.REGISTRY.values():
        names = compatible(spec)
        for name, entry in ANALYZERS.items():
            fits = entry.needs <= spec.capabilities and spec.input.modality in entry.modalities
            assert (name in names) == fits
    assert "capsule_routing" in compatible(model_zoo.get_spec("capsnet"))
    assert "capsule_routing" not in compatible(model_zoo.get_spec("vit-dot"))
    assert "latent_projection" in compatible(model_zoo.get_spec("vae-2d"))
    assert "attention_maps" in compatible(model_zoo.get_spec("minilm"))


def test_every_analyzer_names_its_paper_and_label():
    for entry in ANALYZERS.values():
        assert entry.label and "https://" in entry.paper and entry.params.__doc__
        assert entry.function.__doc__.split("\n")[0].endswith(".")
    assert set(ATTRIBUTION_METHODS) <= set(ANALYZERS)


def test_run_analyzer_refuses_what_does_not_fit(digits):
    with pytest.raises(ParamError, match="does not fit"):
        run_analyzer("capsule_routing", untrained("vit-dot"), model_zoo.get_spec("vit-dot"), digits[:1])
    with pytest.raises(ParamError, match="unknown analyzer"):
        run_analyzer("gradcam", untrained("vit-dot"), model_zoo.get_spec("vit-dot"), digits[:1])
    with pytest.raises(ParamError, match="takes IGParams"):
        run_analyzer("integrated_gradients", untrained("vit-dot"), model_zoo.get_spec("vit-dot"), digits[:1],
                     SmoothGradParams())


def test_from_record_refuses_foreign_records():
    with pytest.raises(ValueError, match="analyzer record"):
        from_record({"type": "Pickle", "version": 1}, {})


def test_importing_analyzers_does_not_import_streamlit():
    code = "import analyzers, model_zoo, sys; assert 'streamlit' not in sys.modules, 'streamlit imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_trainable_model_is_frozen_during_the_call_and_restored_after(digits):
    spec = model_zoo.get_spec("vae-2d")
    model = model_zoo.build(spec).train().requires_grad_(True)
    result = run_analyzer("integrated_gradients", model, spec, digits[:1], IGParams(n_steps=4))
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    assert np.isfinite(result.attributions).all()
