"""Training recipes: a short run lowers the loss for every family, and runs are deterministic."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model_zoo import REGISTRY, build, load_split
from model_zoo.data import Split
from model_zoo.training import _loss_fn, fit, random_shift, train

FAMILY_REPRESENTATIVES = ["vit-dot", "vit-dense", "vae-16d", "capsnet"]


@pytest.fixture(scope="module")
def small_split() -> Split:
    s = load_split()
    return dataclasses.replace(s, x_train=s.x_train[:256], y_train=s.y_train[:256],
                               x_heldout=s.x_heldout[:50], y_heldout=s.y_heldout[:50])


def _loss_on(spec, model, split: Split) -> float:
    x = torch.from_numpy(split.x_train[:64]).float().div(255).unsqueeze(1)
    y = torch.from_numpy(split.y_train[:64]).long()
    with torch.no_grad():
        return _loss_fn(spec)(model.eval(), x, y, torch.Generator().manual_seed(1)).item()


@pytest.mark.parametrize("name", FAMILY_REPRESENTATIVES)
def test_short_training_lowers_the_loss(name, small_split):
    spec = REGISTRY[name]
    recipe = dataclasses.replace(spec.recipe, batch_size=32)
    torch.manual_seed(recipe.seed)
    before = _loss_on(spec, build(spec), small_split)
    model, _ = fit(spec, small_split, recipe, progress=False, max_steps=16)
    assert _loss_on(spec, model, small_split) < 0.9 * before


def test_training_is_deterministic(small_split):
    spec = REGISTRY["vit-random"]
    recipe = dataclasses.replace(spec.recipe, batch_size=32)
    a, la = fit(spec, small_split, recipe, progress=False, max_steps=4)
    b, lb = fit(spec, small_split, recipe, progress=False, max_steps=4)
    assert la == lb
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k


def test_random_shift_moves_pixels_by_whole_steps():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10, 10] = 1
    for seed in range(5):
        y = random_shift(x, 2, torch.Generator().manual_seed(seed))
        assert y.sum() == 1  # moved, not blurred or lost
        r, c = (y[0, 0] == 1).nonzero()[0].tolist()
        assert abs(r - 10) <= 2 and abs(c - 10) <= 2


def test_train_writes_a_self_describing_checkpoint(tmp_path, small_split, monkeypatch):
    monkeypatch.setattr("model_zoo.training.load_split", lambda data_dir=None: small_split)
    result = train(REGISTRY["vae-2d"], out_dir=tmp_path, progress=False, max_steps=3)
    from model_zoo.checkpoint import file_sha256, read_metadata
    path = tmp_path / "vae-2d.safetensors"
    assert result.sha256 == file_sha256(path)
    meta = read_metadata(path)
    assert meta["split_sha256"] == small_split.sha256 and "neg_elbo_nats" in meta["metrics"]
    assert (tmp_path / "manifest.json").exists()
