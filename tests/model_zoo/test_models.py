"""Every zoo model, parametrised over the registry: loads, shapes, attention and routing invariants."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from model_zoo import REGISTRY
from model_zoo.vae import kl_per_dim

ATTENTION = [n for n, s in REGISTRY.items() if "attention" in s.capabilities and "text" not in s.capabilities]
CLASSIFIERS = [n for n, s in REGISTRY.items() if "classifier" in s.capabilities and s.input.modality == "image"]
VAES = [n for n, s in REGISTRY.items() if s.family == "vae"]


@pytest.fixture(scope="module")
def digits():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 1, 28, 28, generator=g)


@pytest.mark.parametrize("name", [n for n, s in REGISTRY.items() if s.family != "causal-lm"])  # SmolLM2: its tests
def test_loads_on_cpu_eval_and_frozen(name, loaded):
    model = loaded(name)
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_scores_shape(name, loaded, digits):
    assert loaded(name).scores(digits).shape == (3, 10)


@pytest.mark.parametrize("name", ATTENTION)
def test_attention_probabilities_per_layer_and_head(name, loaded, digits):
    model = loaded(name)
    out = model(digits, output_attentions=True)
    cfg = model.cfg
    assert len(out.attentions) == cfg.depth
    for probs in out.attentions:
        assert probs.shape == (3, cfg.heads, cfg.n_tokens, cfg.n_tokens)
        torch.testing.assert_close(probs.sum(-1), torch.ones(3, cfg.heads, cfg.n_tokens))
        assert (probs >= 0).all()
    torch.testing.assert_close(out.logits, model(digits), atol=1e-5, rtol=1e-5)


def test_minilm_attention_rows_sum_to_one(loaded):
    model = loaded("minilm")
    enc = model.tokenize(["The cat sat on the mat.", "Attention is all you need"])
    out = model(enc["input_ids"], enc["attention_mask"], output_attentions=True)
    T = enc["input_ids"].shape[1]
    assert len(out.attentions) == 6 and out.attentions[0].shape == (2, 12, T, T)
    for probs in out.attentions:
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, 12, T))
    torch.testing.assert_close(out.embeddings.norm(dim=-1), torch.ones(2))


def test_minilm_similar_sentences_score_higher(loaded):
    e = loaded("minilm").embed(["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell."])
    assert (e[0] @ e[1]) > (e[0] @ e[2]) + 0.2


def test_random_synthesizer_ignores_the_input(loaded, digits):
    model = loaded("vit-random")
    a = model(digits[:1], output_attentions=True).attentions
    b = model(1 - digits[1:2], output_attentions=True).attentions
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_dot_attention_depends_on_the_input(loaded, digits):
    model = loaded("vit-dot")
    a = model(digits[:1], output_attentions=True).attentions[0]
    b = model(1 - digits[1:2], output_attentions=True).attentions[0]
    assert not torch.allclose(a, b)


def test_mixture_exposes_weights_and_components(loaded, digits):
    out = loaded("vit-mixture")(digits, output_attentions=True)
    parts = out.parts[0]
    torch.testing.assert_close(parts["mix_weights"].sum(-1), torch.ones(3, 4))
    assert parts["random"].shape == parts["dot"].shape == out.attentions[0].shape


def test_capsule_outputs_and_routing(loaded, digits):
    model = loaded("capsnet")
    out = model(digits)
    assert out.poses.shape == (3, 10, 16) and out.lengths.shape == (3, 10)
    assert out.routing.shape == (3, 3, 576, 10)  # (iters, B, primary, digit)
    torch.testing.assert_close(out.routing.sum(-1), torch.ones(3, 3, 576))
    assert ((out.lengths > 0) & (out.lengths < 1)).all()
    r = model.reconstruct(out.poses, 4)
    assert r.shape == (3, 1, 28, 28) and 0 <= r.min() and r.max() <= 1
    assert not torch.equal(r, model.reconstruct(out.poses, 5))


def test_capsnet_einsum_matches_broadcast_matmul(loaded, digits):
    model = loaded("capsnet")
    u = model.primary_capsules(digits)  # (B, I, 8)
    einsum = torch.einsum("bie,ijde->bijd", u, model.W)
    matmul = (model.W[None] @ u[:, :, None, :, None]).squeeze(-1)  # (B, I, 10, 16)
    torch.testing.assert_close(einsum, matmul, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", VAES)
def test_vae_encode_decode_and_closed_form_kl(name, loaded, digits):
    model = loaded(name)
    mu, logvar = model.encode(digits)
    D = model.cfg.latent_dim
    assert mu.shape == logvar.shape == (3, D)
    assert model.decode(mu).shape == (3, 1, 28, 28)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    torch.testing.assert_close(kl_per_dim(mu, logvar), ref, atol=1e-5, rtol=1e-5)
