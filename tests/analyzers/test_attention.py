"""Attention: rollout known answers, maps for every kind, CLS maps, head statistics, MiniLM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import model_zoo
from analyzers import AttentionParams, HeadStatsParams, ParamError, attention_maps, gradient_rollout, head_statistics, rollout
from analyzers.attention import cls_map, entropy, input_dependence, mean_distance

from .conftest import minilm, untrained

VITS = [n for n, s in model_zoo.REGISTRY.items() if s.input.modality == "image" and "attention" in s.capabilities]


def _random_attention(L=3, B=2, H=4, T=6, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(L, B, H, T, T, generator=g, dtype=torch.float64).softmax(-1)


# --- known answers ----------------------------------------------------------------------------

def test_rollout_of_identity_attention_is_identity():
    eye = torch.eye(7, dtype=torch.float64).expand(4, 2, 3, 7, 7)  # (L, B, H, T, T)
    for fusion in ("mean", "max", "min"):
        assert torch.equal(rollout(eye, fusion), torch.eye(7, dtype=torch.float64).expand(2, 7, 7))


def test_rollout_matches_the_definition_and_rows_sum_to_one():
    a = _random_attention()
    expected = None
    for layer in a:  # Abnar & Zuidema 2020: 0.5 A + 0.5 I per layer, multiplied input to output
        step = 0.5 * layer.mean(1) + 0.5 * torch.eye(6, dtype=a.dtype)
        expected = step if expected is None else step @ expected
    r = rollout(a)
    torch.testing.assert_close(r, expected)
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 6, dtype=a.dtype))


def test_gradient_rollout_with_zero_or_negative_gradients_is_identity():
    a = _random_attention()
    eye = torch.eye(6, dtype=a.dtype).expand(2, 6, 6)
    assert torch.equal(gradient_rollout(a, torch.zeros_like(a)), eye)
    assert torch.equal(gradient_rollout(a, -torch.ones_like(a)), eye)
    g = torch.ones_like(a)  # positive gradients: R = prod (I + mean_h A)
    expected = eye.clone()
    for layer in a:
        expected = expected + layer.mean(1) @ expected
    torch.testing.assert_close(gradient_rollout(a, g), expected)


def test_entropy_distance_and_dependence_known_values():
    spec = model_zoo.get_spec("vit-dot")
    T = 50
    uniform = torch.full((1, 3, 2, T, T), 1.0 / T, dtype=torch.float64)
    mask = torch.ones(3, T, dtype=torch.bool)
    torch.testing.assert_close(entropy(uniform, mask), torch.full((1, 2), math.log(T), dtype=torch.float64))
    eye = torch.eye(T, dtype=torch.float64).expand(1, 3, 2, T, T)
    assert torch.equal(mean_distance(eye, mask, spec), torch.zeros(1, 2, dtype=torch.float64))
    assert torch.equal(input_dependence(eye, mask), torch.zeros(1, 2, dtype=torch.float64))
    right = torch.zeros(1, 1, 1, T, T, dtype=torch.float64)  # every patch attends to its right neighbour
    for q in range(1, T):
        right[..., q, q + 1 if q % 7 else q] = 1.0
    right[..., 0, 0] = 1.0
    d = mean_distance(right, torch.ones(1, T, dtype=torch.bool), spec)
    assert d.item() == pytest.approx(6 * 7 / 49)  # 42 patches move one step, 7 at the right edge stay


def test_cls_map_puts_the_cls_row_on_the_patch_grid():
    a = torch.zeros(1, 50, 50)
    a[0, 0, 1 + 3 * 7 + 5] = 1.0  # CLS attends to patch (row 3, col 5)
    m = cls_map(a)
    assert m.shape == (1, 28, 28)
    r, c = divmod(int(m[0].argmax()), 28)
    assert 12 <= r < 16 and 20 <= c < 24
    flat = cls_map(torch.full((2, 50, 50), 0.02))
    torch.testing.assert_close(flat, torch.full((2, 28, 28), 0.02))


# --- every attention kind ----------------------------------------------------------------------

@pytest.mark.parametrize("name", VITS)
def test_maps_for_every_kind(name, digits):
    spec, model = model_zoo.get_spec(name), untrained(name)
    r = attention_maps(model, spec, digits[:2], AttentionParams())
    L, H, T = model.cfg.depth, model.cfg.heads, model.cfg.n_tokens
    assert r.attentions.shape == (L, 2, H, T, T) and r.kind == spec.config.attention
    np.testing.assert_allclose(r.attentions.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(r.rollout.sum(-1), 1.0, atol=1e-5)
    assert r.grad_rollout.shape == (2, T, T) and np.isfinite(r.grad_rollout).all()
    assert r.cls_maps.shape == (L, 2, H, 28, 28) and r.rollout_map.shape == (2, 28, 28)
    assert (r.predictions == model(digits[:2]).argmax(1).numpy()).all()
    if spec.config.attention == "mixture":
        assert set(r.components) == {"random", "dot"} and r.mix_weights.shape == (L, H, 2)
        np.testing.assert_allclose(r.mix_weights.sum(-1), 1.0, atol=1e-6)
    else:
        assert r.components == {} and r.mix_weights is None


@pytest.mark.parametrize("name", ["vit-dot", "vit-random"])
def test_batch_equals_one_example_at_a_time(name, digits):
    spec, model = model_zoo.get_spec(name), untrained(name)
    batch = attention_maps(model, spec, digits[:3], AttentionParams())
    one = attention_maps(model, spec, digits[2:3], AttentionParams())
    np.testing.assert_allclose(batch.attentions[:, 2:], one.attentions, atol=1e-6)
    np.testing.assert_allclose(batch.grad_rollout[2:], one.grad_rollout, rtol=1e-4, atol=1e-6)


def test_gradient_rollout_can_be_switched_off(digits):
    spec = model_zoo.get_spec("vit-dot")
    r = attention_maps(untrained("vit-dot"), spec, digits[:1], AttentionParams(gradient_rollout=False))
    assert r.grad_rollout is None and r.grad_rollout_map is None


@pytest.mark.parametrize("name, zero", [("vit-random", True), ("vit-factorized", True), ("vit-dot", False),
                                        ("vit-dense", False)])
def test_input_dependence_is_exactly_zero_only_for_input_independent_heads(name, zero, digits):
    spec, model = model_zoo.get_spec(name), untrained(name)
    for measure in ("std", "js"):
        s = head_statistics(model, spec, digits, HeadStatsParams(dependence=measure))
        assert s.dependence.shape == (model.cfg.depth, model.cfg.heads)
        if zero:
            assert (s.dependence == 0).all()
        else:
            assert (s.dependence > 0).all()
    assert ((s.entropy > 0) & (s.entropy <= math.log(model.cfg.n_tokens) + 1e-9)).all()
    assert ((s.distance > 0) & (s.distance < 6 * math.sqrt(2))).all()


def test_mixture_statistics_per_component(digits):
    spec = model_zoo.get_spec("vit-mixture")
    s = head_statistics(untrained("vit-mixture"), spec, digits, HeadStatsParams())
    assert (s.components["dependence/random"] == 0).all() and (s.components["dependence/dot"] > 0).all()
    assert (s.dependence > 0).all()


def test_head_statistics_need_two_inputs(digits):
    with pytest.raises(ParamError, match="at least 2 inputs"):
        head_statistics(untrained("vit-dot"), model_zoo.get_spec("vit-dot"), digits[:1], HeadStatsParams())


def test_minilm_attention_maps_and_statistics():
    spec, model = model_zoo.get_spec("minilm"), minilm()
    texts = ["The cat sat on the mat.", "Transformers attend to tokens in a sentence."]
    r = attention_maps(model, spec, texts, AttentionParams())
    L, B, H, T, _ = r.attentions.shape
    assert (L, B, H) == (6, 2, 12) and r.kind == "minilm" and r.cls_maps is None
    assert r.tokens[0][0] == "[CLS]" and len(r.tokens[0]) == int(r.token_mask[0].sum())
    np.testing.assert_allclose(r.attentions.sum(-1), 1.0, atol=1e-5)
    pad = r.token_mask[0] == 0
    assert (r.attentions[:, 0][..., pad] < 1e-6).all()  # no attention to padding
    assert r.grad_rollout is not None and np.isfinite(r.grad_rollout).all()
    s = head_statistics(model, spec, texts, HeadStatsParams())
    assert s.entropy.shape == (6, 12) and (s.dependence > 0).all() and (s.distance > 0).all()
