"""Novelty: the negative ELBO under a VAE, equal to the training loss's, deterministic, independent of the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import model_zoo
from analyzers import NoveltyParams, NoveltyResult, compatible, run_analyzer
from model_zoo.vae import VAEOutput, negative_elbo

from .conftest import trained_or_skip, untrained


def _score(name: str, model, inputs, **params) -> NoveltyResult:
    return run_analyzer("novelty", model, model_zoo.get_spec(name), inputs, NoveltyParams(**params))


def test_novelty_fits_the_vaes_only():
    fits = [n for n, s in model_zoo.REGISTRY.items() if "novelty" in compatible(s)]
    assert fits == ["vae-2d", "vae-16d"]


def test_at_the_posterior_mean_it_is_the_training_loss_with_z_at_mu(digits):
    model = untrained("vae-16d")
    result = _score("vae-16d", model, digits)
    with torch.no_grad():
        mu, logvar = model.encode(digits)
        expected = negative_elbo(digits, VAEOutput(model.decode_logits(mu), mu, logvar, mu)).double().numpy()
    np.testing.assert_allclose(result.neg_elbo, expected, rtol=1e-5)
    np.testing.assert_allclose(result.neg_elbo, result.recon_nll + result.kl)
    assert (result.kl >= 0).all() and (result.recon_nll > 0).all()
    assert result.reconstructions.shape == (4, 28, 28) and result.reconstructions.dtype == np.float32
    assert result.neg_elbo.dtype == np.float64 and result.samples == 0


@pytest.mark.parametrize("samples", [0, 3])
def test_an_input_scores_the_same_alone_or_in_a_batch_and_again(digits, samples):
    model = untrained("vae-2d")
    batch = _score("vae-2d", model, digits, samples=samples).neg_elbo
    alone = _score("vae-2d", model, digits[2:3], samples=samples).neg_elbo
    np.testing.assert_allclose(alone, batch[2:3], rtol=1e-5)
    np.testing.assert_array_equal(_score("vae-2d", model, digits, samples=samples).neg_elbo, batch)


def test_draws_change_with_the_seed_and_cost_what_they_say(digits):
    model = untrained("vae-2d")
    a = _score("vae-2d", model, digits, samples=4, seed=0).neg_elbo
    b = _score("vae-2d", model, digits, samples=4, seed=1).neg_elbo
    assert not np.array_equal(a, b)
    assert NoveltyParams(samples=4).cost_factors() == {"samples": 4}
    assert NoveltyParams().cost_factors() == {}


def test_the_default_input_is_the_held_out_split():
    result = _score("vae-2d", untrained("vae-2d"), None)
    assert result.neg_elbo.shape == (1000,) and np.isfinite(result.neg_elbo).all()


def test_the_trained_vae_scores_held_out_digits_near_its_card_and_noise_far_above():
    model = trained_or_skip("vae-16d")
    sampled = _score("vae-16d", model, None, samples=8)
    card = model_zoo.get_spec("vae-16d").metrics["neg_elbo_nats"]  # one draw per digit, in training.evaluate
    assert sampled.neg_elbo.mean() == pytest.approx(card, rel=0.02)
    at_mean = _score("vae-16d", model, None).neg_elbo
    assert at_mean.mean() <= sampled.neg_elbo.mean()  # decoding the mean fits at least as well on average
    noise = torch.from_numpy(np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32))
    assert _score("vae-16d", model, noise).neg_elbo.min() > 2 * np.percentile(at_mean, 99)
