"""Latent space: projections and their disk cache, grid, traversal, interpolation, statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

import model_zoo
from analyzers import (
    GridParams, InterpolationParams, LatentStatsParams, ParamError, ProjectionParams, TraversalParams,
    latent_interpolation, latent_projection, latent_statistics, latent_traversal, manifold_grid,
)
from analyzers import latent
from analyzers.latent import cache_dir, slerp

from .conftest import trained_or_skip, untrained


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))


@pytest.fixture(scope="module")
def thirty() -> tuple[torch.Tensor, np.ndarray]:
    x, y = model_zoo.load_split().heldout_tensor(30)
    return x, y.numpy()


def test_identity_projection_is_the_2d_means(digits):
    spec, model = model_zoo.get_spec("vae-2d"), untrained("vae-2d")
    r = latent_projection(model, spec, digits, ProjectionParams(method="identity"), labels=np.arange(4))
    mu, logvar = model.encode(digits)
    np.testing.assert_array_equal(r.coords, mu.numpy())
    np.testing.assert_array_equal(r.logvar, logvar.numpy())
    assert r.labels.tolist() == [0, 1, 2, 3] and not r.cached


def test_identity_needs_a_2d_latent(digits):
    with pytest.raises(ParamError, match="2-D latent"):
        latent_projection(untrained("vae-16d"), model_zoo.get_spec("vae-16d"), digits,
                          ProjectionParams(method="identity"))


def test_default_data_is_the_heldout_split_with_labels():
    r = latent_projection(untrained("vae-16d"), model_zoo.get_spec("vae-16d"), None, ProjectionParams())
    split = model_zoo.load_split()
    assert r.coords.shape == (len(split.y_heldout), 2) and (r.labels == split.y_heldout).all()


def test_tsne_is_cached_on_disk_as_plain_npy(thirty, tmp_path, monkeypatch):
    spec, model = model_zoo.get_spec("vae-16d"), untrained("vae-16d")
    x, _ = thirty
    params = ProjectionParams(method="tsne", perplexity=5.0)
    first = latent_projection(model, spec, x, params)
    second = latent_projection(model, spec, x, params)
    assert not first.cached and second.cached
    np.testing.assert_array_equal(first.coords, second.coords)
    files = list(cache_dir().glob("tsne-*.npy"))
    assert len(files) == 1 and cache_dir() == tmp_path / "cache" / "projections"
    np.testing.assert_array_equal(np.load(files[0], allow_pickle=False), first.coords)
    monkeypatch.setattr(latent, "_fit_tsne", lambda mu, params: mu[:, :2])  # one real fit is enough
    other = latent_projection(model, spec, x, params.replace(seed=1))
    assert not other.cached and len(list(cache_dir().glob("tsne-*.npy"))) == 2


def test_umap_cache_key_depends_on_data_and_relevant_params(thirty, monkeypatch):
    calls = []

    def fake_umap(mu, params):  # the real fit costs ~14 s of numba compilation
        calls.append(params)
        return mu[:, :2] * params.min_dist

    monkeypatch.setattr(latent, "_fit_umap", fake_umap)
    spec, model = model_zoo.get_spec("vae-16d"), untrained("vae-16d")
    x, _ = thirty
    p = ProjectionParams(method="umap")
    latent_projection(model, spec, x, p)
    assert latent_projection(model, spec, x, p.replace(perplexity=50.0)).cached  # t-SNE setting: same key
    assert not latent_projection(model, spec, x, p.replace(min_dist=0.5)).cached
    assert not latent_projection(model, spec, x[:20], p).cached
    assert len(calls) == 3


def test_precompute_writes_the_files_the_app_reads(monkeypatch):
    monkeypatch.setattr(latent, "_fit_umap", lambda mu, params: mu[:, :2])
    monkeypatch.setattr(latent, "_fit_tsne", lambda mu, params: mu[:, :2] + 1)
    trained_or_skip("vae-2d")
    paths = latent.precompute_projections(names=("vae-2d",))
    assert len(paths) == 2 and all(p.exists() for p in paths)
    r = latent_projection(model_zoo.load("vae-2d", "cpu"), model_zoo.get_spec("vae-2d"), None,
                          ProjectionParams(method="umap"))
    assert r.cached


def test_manifold_grid_over_normal_quantiles():
    spec, model = model_zoo.get_spec("vae-16d"), untrained("vae-16d")
    r = manifold_grid(model, spec, None, GridParams(n=5, span=0.9, dim_x=3, dim_y=7))
    q = norm.ppf(np.linspace(0.05, 0.95, 5))
    np.testing.assert_allclose(r.quantiles, q)
    np.testing.assert_allclose(r.z[0, :, 3], q, rtol=1e-6)  # columns vary dim_x
    np.testing.assert_allclose(r.z[:, 0, 7], q[::-1], rtol=1e-6)  # top row highest
    others = np.delete(r.z, [3, 7], axis=2)
    assert (others == 0).all() and r.images.shape == (5, 5, 28, 28)
    assert ((r.images >= 0) & (r.images <= 1)).all()
    with pytest.raises(ParamError, match="dim_x and dim_y"):
        manifold_grid(model, spec, None, GridParams(dim_x=2, dim_y=2))
    with pytest.raises(ParamError, match="0 to 1"):
        manifold_grid(untrained("vae-2d"), model_zoo.get_spec("vae-2d"), None, GridParams(dim_y=5))


def test_traversal_moves_one_dimension_per_row(digits):
    spec, model = model_zoo.get_spec("vae-16d"), untrained("vae-16d")
    r = latent_traversal(model, spec, digits[:2], TraversalParams(k=2.0, steps=5))
    assert r.images.shape == (2, 16, 5, 28, 28)
    np.testing.assert_allclose(r.offsets, [-2, -1, 0, 1, 2])
    centre = model.decode(torch.from_numpy(r.mu)).numpy()[:, 0]  # offset 0 = the mean itself
    for d in (0, 9):
        np.testing.assert_allclose(r.images[:, d, 2], centre, atol=1e-6)
    assert not np.allclose(r.images[:, 0, 0], r.images[:, 0, 4])


def test_interpolation_ends_at_the_means_and_slerp_is_spherical(digits):
    spec, model = model_zoo.get_spec("vae-16d"), untrained("vae-16d")
    r = latent_interpolation(model, spec, digits[:2], InterpolationParams(steps=7))
    mu, _ = model.encode(digits[:2])
    for z in (r.z_linear, r.z_slerp):
        np.testing.assert_allclose(z[0], mu[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(z[-1], mu[1].numpy(), atol=1e-5)
    np.testing.assert_allclose(r.z_linear[3], mu.mean(0).numpy(), atol=1e-5)
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    path = slerp(a, b, np.linspace(0, 1, 9))
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0)  # equal norms stay on the circle
    np.testing.assert_allclose(path[4], [np.sqrt(0.5), np.sqrt(0.5)])
    with pytest.raises(ParamError, match="exactly 2"):
        latent_interpolation(model, spec, digits[:3], InterpolationParams())


def test_statistics_kl_active_units_and_probe():
    model = trained_or_skip("vae-16d")
    r = latent_statistics(model, model_zoo.get_spec("vae-16d"), None, LatentStatsParams(probe_folds=3))
    assert r.kl_per_dim.shape == (16,) and (r.kl_per_dim >= 0).all()
    assert (r.active == (r.mu_variance > 0.01)).all() and r.active.sum() >= 2
    assert r.probe_accuracy > 0.6  # far above the 0.1 of chance on 10 balanced digits
    assert r.n_inputs == 1000


def test_statistics_without_labels_skip_the_probe(digits):
    spec, model = model_zoo.get_spec("vae-2d"), untrained("vae-2d")
    r = latent_statistics(model, spec, digits, LatentStatsParams())
    assert np.isnan(r.probe_accuracy) and r.n_inputs == 4
    mu, _ = model.encode(digits)
    np.testing.assert_allclose(r.mu_variance, mu.double().var(0, unbiased=False).numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", ["vae-2d", "vae-16d"])
@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_shipped_heldout_projections_are_used_without_fitting(name, method, monkeypatch):
    from importlib.metadata import version

    trained_or_skip(name)
    shipped = sorted(latent.SHIPPED_PROJECTIONS.glob(f"{method}-*.npy"))
    assert shipped, "run `python -m analyzers.latent --ship` after training"
    if method == "umap" and version("umap-learn") != SHIPPED_UMAP_VERSION:
        pytest.skip(f"projections were fitted with umap-learn {SHIPPED_UMAP_VERSION}; this is {version('umap-learn')}")

    def refuse(mu, params):
        raise AssertionError("fitted instead of using the shipped projection")

    monkeypatch.setattr(latent, "_fit_umap", refuse)
    monkeypatch.setattr(latent, "_fit_tsne", refuse)
    r = latent_projection(model_zoo.load(name, "cpu"), model_zoo.get_spec(name), None, ProjectionParams(method=method))
    assert r.cached and r.coords.shape == (1000, 2) and np.isfinite(r.coords).all()


SHIPPED_UMAP_VERSION = "0.5.12"
