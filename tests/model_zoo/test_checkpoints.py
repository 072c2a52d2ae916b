"""Shipped checkpoints: safetensors only, self-describing, reproducible, and clear errors when broken."""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys

import pytest
import torch

from model_zoo import REGISTRY, CheckpointError, best_device, load_spec, load_split
from model_zoo.checkpoint import file_sha256, read_metadata
from model_zoo.spec import CHECKPOINT_DIR
from model_zoo.training import evaluate

from .conftest import trained_names


@pytest.mark.parametrize("name", trained_names())
def test_manifest_matches_the_shipped_file(name):
    spec = REGISTRY[name]
    assert spec.checkpoint_path.exists(), f"run `zooscope train {name}`"
    assert spec.sha256 == file_sha256(spec.checkpoint_path)
    meta = read_metadata(spec.checkpoint_path)
    assert meta["name"] == name
    assert meta["config"] == json.loads(json.dumps(dataclasses.asdict(spec.config)))
    assert meta["split_sha256"] == _split_of(spec).sha256
    assert meta["metrics"] == spec.metrics


def _split_of(spec):
    """The split a model was trained and measured on: CMUdict words for the G2P models, else the digits."""
    if spec.family == "seq2seq":
        from model_zoo.g2p import load_g2p_split
        return load_g2p_split()
    return load_split()


@pytest.mark.parametrize("name", trained_names())
def test_shipped_checkpoint_reproduces_its_metric(name, loaded):
    spec = REGISTRY[name]
    if spec.family == "seq2seq":  # G2P: PER and WER on the held-out words, greedy decoding is deterministic
        from model_zoo.g2p_training import evaluate_g2p
        assert evaluate_g2p(loaded(name), _split_of(spec)) == pytest.approx(spec.metrics, abs=1e-4)
        return
    measured = evaluate(spec, loaded(name), load_split())
    for key, recorded in spec.metrics.items():
        tolerance = 0.005 if key == "accuracy" else 0.5  # half a point of accuracy; half a nat of ELBO
        assert measured[key] == pytest.approx(recorded, abs=tolerance), key


FLOORS = {"vit-dot": 0.93, "vit-dense": 0.93, "vit-random": 0.90, "vit-factorized": 0.90,
          "vit-mixture": 0.93, "capsnet": 0.975, "vae-16d": 110.0, "vae-2d": 160.0}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_held_out_floors(name):
    metrics = REGISTRY[name].metrics
    if "accuracy" in metrics:
        assert metrics["accuracy"] >= FLOORS[name]
    else:
        assert metrics["neg_elbo_nats"] <= FLOORS[name]


# What the issues allow: the digit models together 30 MiB; each G2P checkpoint 10 MB (issue 18); the
# fine-tuned text classifier, a delta over the MiniLM that a package ships, 30 MB (issue 17).
OWN_BUDGET = {"g2p-soft": 10_000_000, "g2p-monotonic": 10_000_000, "minilm-sentiment": 30_000_000}


def test_checkpoints_fit_the_size_budget():
    sizes = {p.stem: p.stat().st_size for p in CHECKPOINT_DIR.glob("*.safetensors")}
    assert sum(n for name, n in sizes.items() if name not in OWN_BUDGET) <= 30 * 1024 * 1024
    for name, budget in OWN_BUDGET.items():
        assert sizes.get(name, 0) <= budget, name


def _spec_at(name, path):
    return dataclasses.replace(REGISTRY[name], checkpoint=str(path))


def test_truncated_checkpoint_names_the_model(tmp_path):
    good = REGISTRY["vit-dot"].checkpoint_path.read_bytes()
    bad = tmp_path / "vit-dot.safetensors"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="vit-dot.*(truncated|unreadable)"):
        load_spec(_spec_at("vit-dot", bad))


def test_shape_mismatch_says_what_did_not_match():
    spec = dataclasses.replace(REGISTRY["vit-dot"], config=dataclasses.replace(REGISTRY["vit-dot"].config, dim=32))
    with pytest.raises(CheckpointError, match=r"vit-dot.*shape mismatch in \d+ tensors.*checkpoint \(64,\) vs model \(32,\)"):
        load_spec(spec)


class _Payload:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['ZS_PWNED'], 'w').write('ran')",))


def test_pickle_in_place_of_a_checkpoint_is_refused_without_running(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("ZS_PWNED", str(marker))
    evil = tmp_path / "vit-dot.safetensors"
    evil.write_bytes(pickle.dumps({"state": _Payload()}))
    torch.save({"x": _Payload()}, tmp_path / "torch-style.safetensors")
    for path in (evil, tmp_path / "torch-style.safetensors"):
        with pytest.raises(CheckpointError, match="not a safetensors file"):
            load_spec(_spec_at("vit-dot", path))
    assert not marker.exists()


def test_device_choice(monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_DEVICE", "cpu")
    assert best_device().type == "cpu"
    assert best_device("cpu").type == "cpu"
    monkeypatch.delenv("ZOOSCOPE_DEVICE")
    assert best_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_importing_model_zoo_does_not_import_streamlit():
    code = "import model_zoo, model_zoo.training, sys; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_models_json_lists_every_model():
    out = subprocess.run([sys.executable, "-m", "app.cli", "models", "--json"], check=True,
                         capture_output=True, text=True).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(REGISTRY)
    assert rows["vit-dot"]["parameters"] > 10_000
    assert rows["vit-dot"]["checkpoint_sha256"] == REGISTRY["vit-dot"].sha256


def test_cli_evaluate_json_remeasures():
    out = subprocess.run([sys.executable, "-m", "app.cli", "evaluate", "vae-2d", "--json"], check=True,
                         capture_output=True, text=True).stdout
    row = json.loads(out)
    assert row["metrics"]["neg_elbo_nats"] == pytest.approx(row["recorded"]["neg_elbo_nats"], abs=0.5)


def test_cli_unknown_model_is_a_clear_error():
    r = subprocess.run([sys.executable, "-m", "app.cli", "evaluate", "vit-nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown model 'vit-nope'" in r.stderr and "Traceback" not in r.stderr
