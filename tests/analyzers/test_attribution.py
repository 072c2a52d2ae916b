"""Attributions: known answers first (the IG paper's toy, a linear model), then properties on the zoo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import model_zoo
from analyzers import (
    ATTRIBUTION_METHODS, FLAG_THRESHOLD, GradientShapParams, IGParams, OcclusionParams, ParamError,
    SaliencyParams, SmoothGradParams, attribute, compatible, integrated_gradients,
)
from analyzers.params import IG_METHODS
from analyzers.run import halving_on_oom

from .conftest import IMAGE_MODELS, Linear, PaperToy, minilm, toy_spec, trained_or_skip, untrained

FAST = {
    "integrated_gradients": IGParams(n_steps=4),
    "saliency": SaliencyParams(),
    "input_x_gradient": None,
    "smoothgrad": SmoothGradParams(nt_samples=2),
    "gradient_shap": GradientShapParams(n_samples=2, baseline_draws=2),
    "occlusion": OcclusionParams(window=14, stride=7),
}


def _fast(method: str):
    return FAST[method] or ATTRIBUTION_METHODS[method].params()


# --- known answers ----------------------------------------------------------------------------

def test_ig_paper_toy_function_gives_known_attributions():
    """Sundararajan et al. 2017, section 2: f = ReLU(ReLU(x1) - 1 - ReLU(x2)) at (3, 1), zero baseline."""
    spec = toy_spec("paper-toy", (2,), value_range=(-10, 10))
    x = torch.tensor([[3.0, 1.0]])
    r = integrated_gradients(PaperToy(), spec, x, IGParams(n_steps=64, method="riemann_middle"))
    np.testing.assert_allclose(r.attributions[0], [1.5, -0.5], atol=1e-5)
    assert r.f_x[0] == pytest.approx(1.0) and r.f_baseline[0] == pytest.approx(0.0)
    assert abs(r.delta[0]) < 1e-5 and not r.flagged[0]


@pytest.mark.parametrize("method", IG_METHODS)
def test_linear_model_ig_equals_input_minus_baseline_times_weight(method):
    model, spec = Linear(k=3), toy_spec("linear", (1, 28, 28), n_classes=3)
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    base = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    r = integrated_gradients(model, spec, x, IGParams(n_steps=4, method=method, target=2), baseline_tensor=base)
    w = model.lin.weight[2].view(1, 1, 28, 28)
    np.testing.assert_allclose(r.attributions, ((x - base) * w).numpy(), rtol=1e-4, atol=1e-6)
    assert r.info.params["baseline"] == "custom"
    assert np.all(np.abs(r.delta) < 1e-4) and not r.flagged.any()


def test_linear_model_input_x_gradient_and_saliency_are_exact():
    model, spec = Linear(k=3), toy_spec("linear", (1, 28, 28), n_classes=3)
    x = torch.rand(2, 1, 28, 28)
    w = model.lin.weight[1].view(1, 1, 28, 28)
    ixg = attribute(model, spec, x, "input_x_gradient", ATTRIBUTION_METHODS["input_x_gradient"].params(target=1))
    np.testing.assert_allclose(ixg.attributions, (x * w).numpy(), rtol=1e-5, atol=1e-7)
    sal = attribute(model, spec, x, "saliency", SaliencyParams(target=1, abs=False))
    np.testing.assert_allclose(sal.attributions, w.expand_as(x).numpy(), rtol=1e-6)
    assert np.isnan(sal.delta).all() and np.isnan(sal.rel_error).all() and not sal.flagged.any()


def test_uniform_baseline_averages_over_draws():
    """Linear model: IG averaged over k noise baselines = (x - mean baseline) * w."""
    model, spec = Linear(k=1), toy_spec("linear", (1, 28, 28))
    x = torch.rand(1, 1, 28, 28)
    r = integrated_gradients(model, spec, x, IGParams(n_steps=2, baseline="uniform", baseline_draws=5, seed=3))
    w = model.lin.weight[0].view(1, 1, 28, 28).numpy()
    np.testing.assert_allclose(r.attributions, (x.numpy() - r.baselines) * w, rtol=1e-4, atol=1e-6)
    assert 0.3 < r.baselines.mean() < 0.7  # the mean of 5 uniform draws, not one


# --- the completeness check --------------------------------------------------------------------

def test_too_few_steps_are_flagged_with_advice(digits):
    spec = model_zoo.get_spec("vit-dense")
    r = integrated_gradients(untrained("vit-dense"), spec, digits[:2],
                             IGParams(n_steps=2, method="riemann_right", baseline="white"))
    assert r.flagged.any()
    i = int(np.argmax(r.flagged))
    assert r.rel_error[i] > FLAG_THRESHOLD
    assert r.advice[i].startswith(f"Completeness error {r.rel_error[i]:.1%} > 5%")
    assert "raise n_steps to" in r.advice[i] and "checked" in r.advice[i] or "gausslegendre" in r.advice[i]
    np.testing.assert_allclose(r.rel_error, np.abs(r.delta) / np.abs(r.f_x - r.f_baseline), rtol=1e-6)


GRADIENT_IMAGE_MODELS = [n for n in IMAGE_MODELS if "integrated_gradients" in compatible(model_zoo.get_spec(n))]


# Not the MoE ViTs: their top-k routing switches along the path, so completeness can fail there by design;
# tests/analyzers/test_routing.py checks that the readout flags it and names the switches.
@pytest.mark.parametrize("name", [n for n in GRADIENT_IMAGE_MODELS
                                  if "routing" not in model_zoo.get_spec(n).capabilities])
def test_trained_models_pass_completeness_at_default_steps(name, digits):
    model = trained_or_skip(name)
    r = integrated_gradients(model, model_zoo.get_spec(name), digits[:2], IGParams())
    assert (r.rel_error < FLAG_THRESHOLD).all(), (r.rel_error, r.advice)
    assert not r.flagged.any()


# --- properties over the zoo -------------------------------------------------------------------

PAIRS = [(n, m) for n in IMAGE_MODELS for m in ATTRIBUTION_METHODS if m in compatible(model_zoo.get_spec(n))]


@pytest.mark.parametrize("name, method", PAIRS)
def test_batch_equals_one_example_at_a_time(name, method, digits):
    spec, model = model_zoo.get_spec(name), untrained(name)
    x = digits[:2]
    batch = attribute(model, spec, x, method, _fast(method))
    single = attribute(model, spec, x[1:2], method, _fast(method))
    assert batch.attributions.shape == x.shape
    scale = np.abs(batch.attributions[1]).max() + 1e-12
    np.testing.assert_allclose(batch.attributions[1:], single.attributions, atol=1e-4 * scale, rtol=1e-3)
    assert batch.targets[1] == single.targets[0] and batch.predictions[1] == single.predictions[0]
    np.testing.assert_allclose(batch.f_x[1:], single.f_x, rtol=1e-5, atol=1e-6)


def test_vae_target_is_a_latent_mean(digits):
    spec, model = model_zoo.get_spec("vae-16d"), untrained("vae-16d")
    r = integrated_gradients(model, spec, digits[:2], IGParams(n_steps=8, target=5))
    mu, _ = model.encode(digits[:2])
    np.testing.assert_allclose(r.f_x, mu[:, 5].double().numpy(), rtol=1e-5)
    assert (r.predictions == -1).all() and r.labels[5] == "z5" and "mu_k" in r.target_label
    auto = integrated_gradients(model, spec, digits[:2], IGParams(n_steps=8))
    assert (auto.targets == mu.abs().argmax(1).numpy()).all()


def test_capsnet_target_is_a_capsule_length(digits):
    spec, model = model_zoo.get_spec("capsnet"), untrained("capsnet")
    r = attribute(model, spec, digits[:1], "saliency", SaliencyParams(target=7))
    assert r.f_x[0] == pytest.approx(float(model(digits[:1]).lengths[0, 7]), rel=1e-5)
    assert r.target_label == "length of the target class capsule"


def test_bad_targets_and_inputs_are_refused(digits):
    spec, model = model_zoo.get_spec("vit-dot"), untrained("vit-dot")
    with pytest.raises(ParamError, match="target=10 is not a class"):
        integrated_gradients(model, spec, digits[:1], IGParams(target=10))
    with pytest.raises(ParamError, match="custom"):
        integrated_gradients(model, spec, digits[:1], IGParams(baseline="custom"))
    with pytest.raises(ParamError, match=r"\[0, 1\]"):
        integrated_gradients(model, spec, digits[:1] * 255, IGParams())
    with pytest.raises(ParamError, match="shape"):
        integrated_gradients(model, spec, torch.zeros(1, 28, 28, 3), IGParams())


@pytest.mark.parametrize("baseline", ["white", "blur", "heldout_mean"])
def test_baselines_are_what_they_say(baseline, digits):
    spec, model = model_zoo.get_spec("vae-2d"), untrained("vae-2d")
    r = integrated_gradients(model, spec, digits[:1], IGParams(n_steps=4, baseline=baseline))
    b = r.baselines[0, 0]
    if baseline == "white":
        assert (b == 1).all()
    elif baseline == "blur":
        assert b.std() < digits[0, 0].numpy().std() and b.mean() == pytest.approx(float(digits[0].mean()), abs=0.02)
    else:
        x, _ = model_zoo.load_split().heldout_tensor()
        np.testing.assert_allclose(b, x.mean(0)[0].numpy(), atol=1e-6)


def test_out_of_memory_retries_with_half_the_batch():
    seen = []

    def run(batch):
        seen.append(batch)
        if batch > 8:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return batch

    assert halving_on_oom(run, 64) == 8 and seen == [64, 32, 16, 8]
    with pytest.raises(RuntimeError, match="shape mismatch"):
        halving_on_oom(lambda b: (_ for _ in ()).throw(RuntimeError("shape mismatch")), 64)


def test_text_methods_other_than_ig_are_refused():
    spec = model_zoo.get_spec("minilm")
    assert [m for m in ATTRIBUTION_METHODS if m in compatible(spec)] == ["integrated_gradients"]
    with pytest.raises(ParamError, match="minilm"):
        attribute(object(), spec, [("a", "b")], "saliency")


def test_minilm_layer_ig_on_sentence_pairs():
    spec, model = model_zoo.get_spec("minilm"), minilm()
    pairs = [("A man is playing a guitar.", "Someone plays music."), ("Cats sleep.", "The stock market fell.")]
    r = integrated_gradients(model, spec, pairs, IGParams(n_steps=32))
    assert r.tokens[0][0] == "[CLS]" and r.tokens[0][-1] == "[SEP]" and "guitar" in r.tokens[0]
    assert r.attributions.shape == r.inputs.shape == r.token_mask.shape
    assert (r.attributions[r.token_mask == 0] == 0).all()
    pad = model.tokenizer.pad_token_id
    assert set(np.unique(r.baselines[0][1:len(r.tokens[0]) - 1])) == {pad}
    assert r.f_x[0] > r.f_x[1]  # related sentences are more similar
    assert (r.rel_error < FLAG_THRESHOLD).all()
    np.testing.assert_allclose(r.attributions.sum(1) - (r.f_x - r.f_baseline), r.delta, atol=1e-4)
