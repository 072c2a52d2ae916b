"""Sequence analyzers: alignment and decoding step by step, per-output-token attribution with completeness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyzers import ParamError, compatible, from_record, run_analyzer, to_record
from analyzers.sequence import SequenceAttributionParams, SequenceParams
from model_zoo import get_spec
from model_zoo.g2p import G2P, G2PConfig

MODELS = ("g2p-soft", "g2p-monotonic")


def model_for(name: str) -> G2P:
    """The shipped model when trained, else a small random one of the same kind (the properties hold for both)."""
    spec = get_spec(name)
    if spec.checkpoint_path.exists() and "per" in spec.metrics:
        from model_zoo import load
        return load(name, "cpu")
    torch.manual_seed(0)
    model = G2P(G2PConfig(attention=spec.config.attention, emb=16, hidden=32, attn_dim=16)).eval()
    if model.monotonic:
        with torch.no_grad():
            model.r.fill_(1.0)
    return model


@pytest.fixture(scope="module", params=MODELS)
def loaded(request):
    return get_spec(request.param), model_for(request.param)


def test_the_sequence_analyzers_fit_the_g2p_models_only():
    for name in MODELS:
        assert {"sequence_alignment", "sequence_attribution"} <= set(compatible(get_spec(name)))
        assert "integrated_gradients" not in compatible(get_spec(name))  # the classifiers' IG does not fit
    assert "sequence_alignment" not in compatible(get_spec("vit-dot"))


def test_alignment_rows_and_positions(loaded):
    spec, model = loaded
    r = run_analyzer("sequence_alignment", model, spec, ["phoenix"], SequenceParams(top_k=3))
    U, T = len(r.outputs), len(r.chars)
    assert r.chars == tuple("phoenix") and r.alignment.shape == (U, T) == r.expected.shape
    assert r.top_tokens.shape == (U, 3) and np.all(np.diff(r.top_probs, axis=1) <= 1e-6)
    assert list(r.top_tokens[:, 0]) == list(r.outputs)  # greedy: the chosen token is the likeliest
    if r.attention == "soft":
        assert np.allclose(r.alignment.sum(1), 1, atol=1e-5)
        assert np.array_equal(r.positions, r.alignment.argmax(1))
    else:
        assert set(np.unique(r.alignment)) <= {0.0, 1.0} and (r.alignment.sum(1) <= 1).all()
        attended = r.positions[r.positions >= 0]
        assert (np.diff(attended) >= 0).all()
        assert (r.expected.sum(1) <= 1 + 1e-5).all() and (r.expected >= 0).all()
        assert r.energy_evaluations <= T + U + 1
    assert (r.entropy >= 0).all() and (r.entropy <= np.log(T) + 1e-5).all()


def test_integrated_gradients_is_complete_for_every_output_token(loaded):
    spec, model = loaded
    p = SequenceAttributionParams(n_steps=48)
    r = run_analyzer("sequence_attribution", model, spec, ["knight"], p)
    U, T = len(r.outputs), len(r.chars)
    assert r.attributions.shape == (U, T) and r.rel_error.shape == (U,) == r.f_x.shape
    gap = r.f_x - r.f_baseline
    assert np.allclose(r.attributions.sum(1), gap, atol=2e-3 + 0.01 * np.abs(gap).max())
    assert (r.rel_error < 0.01).all(), r.rel_error
    assert (r.f_x <= 0).all()  # log-probabilities


def test_the_comparison_methods(loaded):
    spec, model = loaded
    occ = run_analyzer("sequence_attribution", model, spec, ["cat"], SequenceAttributionParams(attribution="occlusion"))
    assert np.isnan(occ.rel_error).all() and np.isfinite(occ.attributions).all()
    ixg = run_analyzer("sequence_attribution", model, spec, ["cat"],
                       SequenceAttributionParams(attribution="input_x_gradient"))
    assert ixg.attributions.shape == occ.attributions.shape and np.isfinite(ixg.rel_error).all()


def test_results_survive_the_store_round_trip(loaded):
    spec, model = loaded
    for name, params in (("sequence_alignment", SequenceParams()), ("sequence_attribution",
                                                                    SequenceAttributionParams(n_steps=8))):
        r = run_analyzer(name, model, spec, ["cat"], params)
        meta, arrays = to_record(r)
        back = from_record(meta, arrays)
        assert tuple(back.outputs) == tuple(r.outputs) and tuple(back.chars) == tuple(r.chars)
        for k, v in arrays.items():
            assert np.array_equal(np.asarray(getattr(back, k)), v, equal_nan=True)
        assert r.summary()["output_tokens"] == list(r.outputs)


@pytest.mark.parametrize("bad", [["h3llo"], ["two", "words"], [""]])
def test_a_bad_word_is_one_clear_error(loaded, bad):
    spec, model = loaded
    with pytest.raises(ParamError, match="letters a-z|one word|type a word"):
        run_analyzer("sequence_alignment", model, spec, bad)

