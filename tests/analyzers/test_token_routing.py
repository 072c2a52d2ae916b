"""Routing per token of Hugging Face MoE models (router logits), on tiny configs built here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyzers import ParamError, compatible, from_record, run_analyzer, to_record
from analyzers.token_routing import TokenRoutingParams, token_routing
from model_zoo import InputSpec, ModelSpec
from model_zoo.adapters import HFGenerative
from tests.hf_fixtures import _bpe_tokenizer

SENTENCES = ["hello world this is", "a tiny tokenizer"]


def _spec(name: str) -> ModelSpec:
    return ModelSpec(name=name, family="causal-lm" if "t5" not in name else "seq2seq", task="toy", description="",
                     paper="", input=InputSpec("text", (), "tokens"), config=None, builder=lambda c: None,
                     capabilities=frozenset({"text", "routing"}))


def _mixtral() -> HFGenerative:
    from transformers import MixtralConfig, MixtralForCausalLM

    tok = _bpe_tokenizer("gpt2")
    torch.manual_seed(0)
    hf = MixtralForCausalLM(MixtralConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                          num_attention_heads=2, num_key_value_heads=1, num_local_experts=4,
                                          num_experts_per_tok=2, max_position_embeddings=64))
    return HFGenerative(hf.eval(), tok, 64, "causal-lm")


def _qwen(norm: bool) -> HFGenerative:
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    tok = _bpe_tokenizer("gpt2")
    torch.manual_seed(0)
    hf = Qwen2MoeForCausalLM(Qwen2MoeConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, moe_intermediate_size=8,
        shared_expert_intermediate_size=8, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        num_experts=6, num_experts_per_tok=2, norm_topk_prob=norm, max_position_embeddings=64))
    return HFGenerative(hf.eval(), tok, 64, "causal-lm")


def _switch() -> HFGenerative:
    from transformers import SwitchTransformersConfig, SwitchTransformersForConditionalGeneration

    tok = _bpe_tokenizer("t5")
    torch.manual_seed(0)
    hf = SwitchTransformersForConditionalGeneration(SwitchTransformersConfig(
        vocab_size=len(tok), d_model=16, d_kv=8, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=2,
        num_experts=4, encoder_sparse_step=1, decoder_sparse_step=1, decoder_start_token_id=0, pad_token_id=0))
    return HFGenerative(hf.eval(), tok, 64, "seq2seq")


def test_mixtral_gates_have_k_experts_summing_to_one_and_match_its_router():
    model = _mixtral()
    r = token_routing(model, _spec("tiny-mixtral"), SENTENCES, TokenRoutingParams())
    B, L, T, k = r.experts.shape
    assert (B, L, k) == (2, 2, 2) and r.k == 2 and r.probs.shape[-1] == 4
    np.testing.assert_allclose(r.weights.sum(-1), 1.0, atol=1e-5)  # Mixtral renormalises its top 2
    enc = model.tokenize(SENTENCES)
    with torch.no_grad():
        logits = model.hf(**enc, output_router_logits=True).router_logits[1].view(B, T, -1)
    assert (r.experts[:, 1] == logits.topk(2, dim=-1).indices.numpy()).all()
    mask = r.token_mask.astype(bool)
    assert (r.load.sum(-1) == 2 * mask.sum(1)[:, None]).all()  # padding is not counted
    s = r.summary()
    assert s["model_type"] == "mixtral" and len(s["layers"][1][0]["tokens"]) == mask[1].sum()
    assert from_record(*to_record(r)).tokens == r.tokens


@pytest.mark.parametrize("norm", [True, False])
def test_qwen2_moe_renormalises_only_when_its_config_says_so(norm):
    r = token_routing(_qwen(norm), _spec("tiny-qwen"), SENTENCES[:1], TokenRoutingParams())
    sums = r.weights.sum(-1)
    if norm:
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    else:
        assert (sums < 1).all()
        np.testing.assert_allclose(r.weights, np.sort(r.probs, -1)[..., ::-1][..., :2], atol=1e-6)


def test_switch_transformers_route_each_token_to_one_expert():
    r = token_routing(_switch(), _spec("tiny-switch-t5"), SENTENCES, TokenRoutingParams())
    assert r.k == 1 and r.experts.shape[-1] == 1 and r.experts.shape[1] == 2  # the encoder's 2 MoE layers
    assert (r.weights <= 1).all()


def test_it_is_offered_for_text_models_with_routing_and_refuses_what_it_cannot_read():
    spec = _spec("tiny-mixtral")
    assert "token_routing" in compatible(spec) and "routing" not in compatible(spec)  # images only there
    with pytest.raises(ParamError, match="list of strings"):
        run_analyzer("token_routing", _mixtral(), spec, torch.zeros(1, 3))
    with pytest.raises(ParamError, match="more than the model's 4 experts"):
        token_routing(_mixtral(), spec, SENTENCES, TokenRoutingParams(top_k=5))
