"""Faithfulness: deletion/insertion on a toy with a perfect attribution; the randomisation check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import model_zoo
from analyzers import CurveParams, ParamError, RandomisationParams, deletion_insertion, randomisation_check
from analyzers.faithfulness import auc, layer_groups

from .conftest import Linear, toy_spec, trained_or_skip, untrained


def test_auc_is_the_trapezoid_area():
    f = np.linspace(0, 1, 5)
    np.testing.assert_allclose(auc(f, np.stack([f, 1 - f, np.ones(5)])), [0.5, 0.5, 1.0])


@pytest.mark.parametrize("unit", ["pixel", "patch"])
def test_perfect_attribution_beats_random_ordering(unit):
    """For f = w . x with w >= 0, (x * w) is the exact contribution of every pixel."""
    model, spec = Linear(k=1, positive=True), toy_spec("linear", (1, 28, 28))
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    perfect = (x * model.lin.weight[0].view(1, 1, 28, 28)).numpy()
    r = deletion_insertion(model, spec, x, CurveParams(unit=unit, steps=16, random_seeds=3), attributions=perfect)
    assert r.deletion.shape == (2, 17) and r.fractions[0] == 0 and r.fractions[-1] == 1
    assert (r.deletion_auc < r.random_deletion_auc).all()
    assert (r.insertion_auc > r.random_insertion_auc).all()
    f0 = model.scores(x)[:, 0].double().numpy()
    np.testing.assert_allclose(r.deletion[:, 0], f0, rtol=1e-5)  # nothing deleted yet
    np.testing.assert_allclose(r.insertion[:, -1], f0, rtol=1e-5)  # everything inserted
    np.testing.assert_allclose(r.deletion[:, -1], r.random_deletion[:, -1], rtol=1e-5)  # all on the baseline


def test_curves_compute_the_attribution_when_not_given(digits):
    spec = model_zoo.get_spec("vit-dot")
    r = deletion_insertion(untrained("vit-dot"), spec, digits[:1],
                           CurveParams(attribution="saliency", steps=4, random_seeds=1, unit="patch"))
    assert r.attribution_method == "saliency" and r.deletion.shape == (1, 5)
    with pytest.raises(ParamError, match="do not match"):
        deletion_insertion(untrained("vit-dot"), spec, digits[:1], CurveParams(), attributions=np.zeros((1, 784)))


def test_layer_groups_follow_the_graph_from_the_output(digits):
    vit = [g for g, _ in layer_groups(untrained("vit-dot"), model_zoo.get_spec("vit-dot"), digits[:1])]
    assert vit[:6] == ["head", "ln", "blocks.3", "blocks.2", "blocks.1", "blocks.0"]
    assert set(vit[6:]) == {"pos", "cls", "patch"}
    vae = [g for g, _ in layer_groups(untrained("vae-2d"), model_zoo.get_spec("vae-2d"), digits[:1])]
    assert vae == ["to_mu", "enc.5", "enc.2", "enc.0"]  # the decoder and logvar head do not move mu
    caps = [g for g, _ in layer_groups(untrained("capsnet"), model_zoo.get_spec("capsnet"), digits[:1])]
    assert caps == ["W", "primary", "conv1"]


def test_randomised_model_attributions_differ_and_the_model_is_untouched(digits):
    spec, model = model_zoo.get_spec("vae-2d"), trained_or_skip("vae-2d")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = randomisation_check(model, spec, digits[:2], RandomisationParams(n_steps=8))
    assert r.layers == ("to_mu", "enc.5", "enc.2", "enc.0")
    assert r.spearman.shape == (4, 2) and r.randomised.shape == (4, 2, 1, 28, 28)
    assert (r.spearman[-1] < 0.8).all()  # fully randomised: attributions no longer rank like the trained ones
    assert not np.allclose(r.randomised[0], r.attributions)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(p.requires_grad for p in model.parameters())


def test_given_attribution_results_keep_their_targets_and_work_is_capped(digits):
    from analyzers import SaliencyParams, attribute

    spec, model = model_zoo.get_spec("vit-dot"), untrained("vit-dot")
    sal = attribute(model, spec, digits[:1], "saliency", SaliencyParams(target=7))
    r = deletion_insertion(model, spec, digits[:1], CurveParams(steps=4, random_seeds=1), attributions=sal)
    assert r.targets.tolist() == [7]
    with pytest.raises(ParamError, match="model evaluations"):
        deletion_insertion(model, spec, digits.repeat(50, 1, 1, 1), CurveParams(steps=784, random_seeds=20))
