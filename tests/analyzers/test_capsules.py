"""Capsules: lengths, routing coefficients and their aggregates, reconstructions, pose perturbation."""

from __future__ import annotations

import numpy as np
import pytest

import model_zoo
from analyzers import CapsuleParams, PoseParams, capsule_routing, pose_perturbation, reconstruct_with_offsets

from .conftest import untrained


@pytest.fixture(scope="module")
def capsnet():
    return model_zoo.get_spec("capsnet"), untrained("capsnet")


def test_routing_per_iteration_and_its_aggregates(capsnet, digits):
    spec, model = capsnet
    r = capsule_routing(model, spec, digits[:2], CapsuleParams(target=4))
    out = model(digits[:2])
    assert r.routing.shape == (3, 2, 576, 10)
    np.testing.assert_allclose(r.routing.sum(-1), 1.0, atol=1e-5)  # c_ij = softmax over digit capsules
    np.testing.assert_allclose(r.lengths, out.lengths.numpy(), rtol=1e-6)
    assert (r.predictions == out.lengths.argmax(1).numpy()).all() and (r.targets == 4).all()
    # primary capsule i = (y * 6 + x) * 16 + type
    y, x, t = 2, 5, 11
    i = (y * 6 + x) * 16 + t
    np.testing.assert_allclose(r.routing_grid[:, :, y, x], r.routing[:, :, (y * 6 + x) * 16:(y * 6 + x + 1) * 16].mean(2),
                               rtol=1e-5)
    np.testing.assert_allclose(r.routing_types[:, :, t], r.routing[:, :, t::16].mean(2), rtol=1e-5)
    assert r.primary_lengths[0, y, x, t] == pytest.approx(float(out.primary[0, i].norm()), rel=1e-5)
    np.testing.assert_allclose(r.routing[0], 0.1, atol=1e-6)  # first iteration: uniform couplings


def test_reconstructions_from_predicted_and_chosen_class(capsnet, digits):
    spec, model = capsnet
    r = capsule_routing(model, spec, digits[:2], CapsuleParams(target=4))
    out = model(digits[:2])
    np.testing.assert_allclose(r.recon_target, model.reconstruct(out.poses, 4)[:, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(r.recon_predicted, model.reconstruct(out.poses, out.lengths.argmax(1))[:, 0].numpy(),
                               atol=1e-6)
    same = capsule_routing(model, spec, digits[:2], CapsuleParams())
    np.testing.assert_array_equal(same.recon_predicted, same.recon_target)


def test_pose_perturbation_grid(capsnet, digits):
    spec, model = capsnet
    r = pose_perturbation(model, spec, digits[:2], PoseParams(steps=5, span=0.25, target=3))
    assert r.images.shape == (2, 16, 5, 28, 28) and (r.targets == 3).all()
    np.testing.assert_allclose(r.offsets, [-0.25, -0.125, 0.0, 0.125, 0.25])
    out = model(digits[:2])
    plain = model.reconstruct(out.poses, 3)[:, 0].numpy()
    for d in (0, 15):
        np.testing.assert_allclose(r.images[:, d, 2], plain, atol=1e-6)  # offset 0: unperturbed
    poses = out.poses.clone()
    poses[:, 3, 6] += 0.25
    np.testing.assert_allclose(r.images[:, 6, 4], model.reconstruct(poses, 3)[:, 0].numpy(), atol=1e-6)


def test_reconstruction_with_slider_offsets_matches_the_perturbation_grid(capsnet, digits):
    spec, model = capsnet
    grid = pose_perturbation(model, spec, digits[:1], PoseParams(steps=5, span=0.25, target=3))
    still = reconstruct_with_offsets(model, spec, digits[:1], 3, np.zeros(16))
    np.testing.assert_allclose(still, grid.images[0, 0, 2], atol=1e-6)  # no offset: the plain reconstruction
    moved = np.zeros(16)
    moved[6] = 0.25
    shifted = reconstruct_with_offsets(model, spec, digits[:1], 3, moved)
    np.testing.assert_allclose(shifted, grid.images[0, 6, 4], atol=1e-6)  # dim 6 at +0.25, as in the grid
    assert shifted.shape == (28, 28) and shifted.dtype == np.float32 and not np.allclose(shifted, still)
