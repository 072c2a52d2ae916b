"""Generation analyzers on tiny T5 (seq2seq) and GPT-2 (causal LM) folders: generation, attribution matrix with
completeness per token, the causal mask, the contrast as a difference of two attributions, attention shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyzers import ANALYZERS, ParamError, compatible, from_record, to_record
from analyzers.generation import (
    ContrastParams,
    GenerationIGParams,
    GenerationParams,
    generation_attention,
    generation_attribution,
    generation_contrast,
    is_generative,
)
from tests.hf_fixtures import tiny_gpt2_folder, tiny_t5_folder

TEXT = ["the film was a delight"]


@pytest.fixture(scope="module", params=["gpt2", "t5"])
def loaded(request, tmp_path_factory):
    from model_zoo import sources

    torch.set_num_threads(1)
    make = tiny_gpt2_folder if request.param == "gpt2" else tiny_t5_folder
    folder = make(tmp_path_factory.mktemp(request.param))
    spec = sources.folder_spec(folder)
    return spec, sources.load_folder(spec.config)


def test_the_generation_analyzers_fit_generative_models_only(loaded):
    spec, _ = loaded
    assert is_generative(spec)
    fits = compatible(spec)
    assert {"generation_attention", "generation_attribution", "generation_contrast"} <= set(fits)
    from model_zoo import get_spec

    for other in ("minilm", "vit-dot", "g2p-soft"):
        assert not ANALYZERS["generation_attribution"].fits(get_spec(other)), other


def test_generation_gives_tokens_candidates_and_attention_of_every_kind(loaded):
    spec, model = loaded
    r = generation_attention(model, spec, TEXT, GenerationParams(max_new_tokens=4, top_k=3))
    n, s = len(r.generated), len(r.source)
    assert 1 <= n <= 4 and s == len(model.tokenizer(TEXT[0])["input_ids"])
    assert r.top_tokens.shape == r.top_probs.shape == (n, 3)
    assert list(r.top_tokens[:, 0]) == list(r.generated)  # greedy: the chosen token is the likeliest
    assert np.all(np.diff(r.top_probs, axis=1) <= 1e-6)
    L, H = model.hf.config.num_hidden_layers if spec.family == "causal-lm" else model.hf.config.num_layers, 2
    t = len(r.self_tokens)
    assert r.self_attention.shape == (L, H, t, t)
    np.testing.assert_allclose(r.self_attention.sum(-1), 1.0, atol=1e-4)
    assert np.abs(np.triu(r.self_attention, k=1)).max() < 1e-7  # nothing attends to a later position
    if spec.family == "seq2seq":
        assert t == n and r.prefix[0] == model.tokenizer.convert_ids_to_tokens(model.hf.config.decoder_start_token_id)
        assert r.encoder_attention.shape == (L, H, s, s)
        assert r.cross_attention.shape == (L, H, t, s)
        np.testing.assert_allclose(r.cross_attention.sum(-1), 1.0, atol=1e-4)
    else:
        assert t == s + n - 1 and r.encoder_attention.size == 0 and r.cross_attention.size == 0


def test_every_generated_token_gets_a_row_and_completeness_holds(loaded):
    spec, model = loaded
    r = generation_attribution(model, spec, TEXT, GenerationIGParams(max_new_tokens=4, n_steps=128))
    n, s, p = len(r.generated), len(r.source), len(r.prefix)
    assert r.attributions.shape == (n, s + p)
    assert r.rel_error.shape == r.delta.shape == (n,)
    assert np.all(r.rel_error < 0.01), r.rel_error
    np.testing.assert_allclose(r.attributions.sum(1), r.f_x - r.f_baseline, rtol=0.01, atol=1e-4)
    assert np.all(np.abs(r.f_x - r.f_baseline) > 1e-3)  # the check is not vacuous
    assert np.all(r.f_x <= 0)  # log-probabilities


def test_the_keep_first_baseline_holds_the_first_token_and_stays_complete(loaded):
    """pad_keep_first: the first source token is in the baseline too, so it gets exactly 0 and rows still add up."""
    spec, model = loaded
    r = generation_attribution(model, spec, TEXT, GenerationIGParams(max_new_tokens=3, n_steps=128,
                                                                     baseline="pad_keep_first"))
    assert r.baseline == "pad_keep_first"
    assert np.all(r.attributions[:, 0] == 0.0), r.attributions[:, 0]
    assert np.any(r.attributions[:, 1:len(r.source)] != 0)
    np.testing.assert_allclose(r.attributions.sum(1), r.f_x - r.f_baseline, rtol=0.01, atol=1e-4)
    pad = generation_attribution(model, spec, TEXT, GenerationIGParams(max_new_tokens=3, n_steps=4))
    assert not np.allclose(pad.f_baseline, r.f_baseline)  # a different baseline: F(first token, then pads)


def test_the_causal_mask_is_respected(loaded):
    """Token i was chosen before the prefix positions after it existed: their attributions are exactly 0."""
    spec, model = loaded
    r = generation_attribution(model, spec, TEXT, GenerationIGParams(max_new_tokens=4, n_steps=8, baseline="zero"))
    s, n = len(r.source), len(r.generated)
    seen = 1 if spec.family == "seq2seq" else 0  # the decoder's start token is seen from the first step on
    for i in range(n):
        later = r.attributions[i, s + i + seen:]
        assert np.all(later == 0.0), (i, later)
    assert np.any(r.attributions[:, :s] != 0)  # the source matters


def test_the_contrast_is_the_difference_of_the_two_single_logit_attributions(loaded):
    spec, model = loaded
    r = generation_contrast(model, spec, TEXT, ContrastParams(max_new_tokens=3, step=2, n_steps=64))
    assert r.fact != r.foil and r.p_fact >= r.p_foil  # the runner-up by default
    np.testing.assert_allclose(r.attributions, r.fact_attributions - r.foil_attributions, atol=1e-5)
    assert r.attributions.shape == (len(r.source) + len(r.prefix),)
    assert abs(r.attributions.sum() - (r.f_x - r.f_baseline)) <= 0.05 * abs(r.f_x - r.f_baseline) + 1e-4
    named = generation_contrast(model, spec, TEXT, ContrastParams(max_new_tokens=3, step=2, n_steps=8, foil=r.foil))
    assert named.foil == r.foil


def test_bad_requests_say_what_to_do(loaded):
    spec, model = loaded
    with pytest.raises(ParamError, match="choose a step from 1 to"):
        generation_contrast(model, spec, TEXT, ContrastParams(max_new_tokens=2, step=5, n_steps=4))
    with pytest.raises(ParamError, match="not one token"):
        generation_contrast(model, spec, TEXT, ContrastParams(max_new_tokens=2, step=1, n_steps=4, foil="zzzqqqxxx"))
    with pytest.raises(ParamError, match="empty"):
        generation_attention(model, spec, ["   "], GenerationParams(max_new_tokens=2))
    with pytest.raises(ParamError, match="one text"):
        generation_attention(model, spec, ["a", "b"], GenerationParams(max_new_tokens=2))


def test_results_survive_the_store_record(loaded):
    spec, model = loaded
    r = generation_attribution(model, spec, TEXT, GenerationIGParams(max_new_tokens=2, n_steps=4))
    back = from_record(*to_record(r))
    assert back.generated == r.generated and back.source == r.source
    np.testing.assert_array_equal(back.attributions, r.attributions)
    a = generation_attention(model, spec, TEXT, GenerationParams(max_new_tokens=2))
    back = from_record(*to_record(a))
    np.testing.assert_array_equal(back.top_tokens, a.top_tokens)
    assert back.summary()["output_tokens"] == list(a.generated)
