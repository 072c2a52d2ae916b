"""Plugins: the example package registers its model through ``zooscope.models``; a broken plugin is reported, not fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import model_zoo
from model_zoo import plugins
from tests.hf_fixtures import install_example_plugin, plugin_on_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    return install_example_plugin(tmp_path_factory.mktemp("plugin") / "site")


def test_the_example_plugin_is_listed_loaded_and_scored(installed):
    with plugin_on_path(installed):
        spec = model_zoo.get_spec("example-mlp")
        assert spec.source == "plugin" and "example-mlp" in spec.extra["plugin"]
        assert list(model_zoo.all_models())[-1] == "example-mlp"  # after the zoo and the folders
        assert spec.metrics["accuracy"] > 0.9 and len(spec.sha256) == 64
        assert model_zoo.current_sha256("example-mlp") == spec.sha256
        model = model_zoo.load("example-mlp", "cpu")
        split = model_zoo.load_split()
        x, y = split.heldout_tensor(200)
        accuracy = float((model.scores(x).argmax(1) == y).float().mean())
        assert accuracy == pytest.approx(spec.metrics["accuracy"], abs=0.05)
        assert not any(p.requires_grad for p in model.parameters())
    assert "example-mlp" not in model_zoo.all_models()


def test_zooscope_models_json_lists_the_plugin_model(installed):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(ROOT)])}
    out = subprocess.run([sys.executable, "-m", "app.cli", "models", "--json"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    row = rows["example-mlp"]
    assert row["source"] == "plugin" and row["sha256"] == row["checkpoint_sha256"] and len(row["sha256"]) == 64
    assert row["path"].endswith("example-mlp.safetensors") and row["parameters"] == 101_770
    assert rows["vit-dot"]["source"] == "zoo"


def _fake_plugin(root: Path, body: str) -> Path:
    """A distribution (dist-info + module) whose entry point runs ``body``."""
    (root / "broken_plugin.py").write_text(body)
    info = root / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zooscope.models]\nbroken = broken_plugin:models\n")
    return root


@pytest.mark.parametrize("body, words", [
    ("raise ImportError('no module named nothing_here')\n", "ImportError"),
    ("def models():\n    raise RuntimeError('boom')\n", "boom"),
    ("def models():\n    return [42]\n", "not a model_zoo.ModelSpec"),
    ("from model_zoo import REGISTRY\nimport dataclasses\n"
     "def models():\n    return [REGISTRY['vit-dot']]\n", "zoo model"),
    ("from model_zoo import REGISTRY\nimport dataclasses\n"
     "def models():\n    return [dataclasses.replace(REGISTRY['vit-dot'], name='pickled', checkpoint='/tmp/x.bin')]\n",
     "safetensors only"),
])
def test_a_broken_plugin_is_reported_and_the_zoo_keeps_working(tmp_path, body, words):
    root = _fake_plugin(tmp_path, body)
    sys.path.insert(0, str(root))
    try:
        plugins.forget()
        models = model_zoo.all_models()
        assert "vit-dot" in models and not any(s.source == "plugin" for s in models.values())
        problems = model_zoo.model_problems()
        assert any("broken" in k and words in v for k, v in problems.items()), problems
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("broken_plugin", None)
        plugins.forget()


def test_plugin_weights_are_header_checked_before_loading(installed, tmp_path):
    import shutil

    copy = tmp_path / "site"
    shutil.copytree(installed, copy)
    weights = copy / "zooscope_example_plugin" / "weights" / "example-mlp.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with plugin_on_path(copy):
        with pytest.raises(model_zoo.CheckpointError, match="truncated"):
            model_zoo.load("example-mlp", "cpu")
