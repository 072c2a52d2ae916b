"""``zooscope analyze`` and ``zooscope bench ig``: summaries, refusals with people messages, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

import model_zoo
from analyzers import from_record
from app.cli.analyze import analyze_command
from app.cli.main import parser

from .conftest import trained_or_skip


def _analyze(capsys, *argv: str) -> tuple[int, str, str]:
    code = analyze_command(parser().parse_args(["analyze", *argv]))
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_input_prints_the_json_summary(capsys):
    trained_or_skip("vae-2d")
    code, out, err = _analyze(capsys, "--model", "vae-2d", "--analyzer", "integrated_gradients",
                              "--input", "sample:3", "--param", "n_steps=8", "--param", "target=1", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert {"model", "analyzer", "prediction", "target", "delta", "rel_error", "flagged", "seconds"} <= s.keys()
    assert s["model"] == "vae-2d" and s["target"] == 1 and s["params"]["n_steps"] == "8"
    assert isinstance(s["rel_error"], float) and isinstance(s["flagged"], bool)


def test_out_writes_arrays_and_metadata_without_pickle(capsys, tmp_path):
    trained_or_skip("vae-2d")
    path = tmp_path / "grid.npz"
    code, _, err = _analyze(capsys, "--model", "vae-2d", "--analyzer", "manifold_grid", "--input", "sample:0",
                            "--param", "n=4", "--out", str(path))
    assert code == 0, err
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__meta__"]))
        arrays = {k: f[k] for k in f.files if k != "__meta__"}
    result = from_record(meta, arrays)
    assert result.images.shape == (4, 4, 28, 28) and result.info.model == "vae-2d"


@pytest.mark.parametrize("argv, words", [
    (["--param", "n_steps=5.5"], ["n_steps", "5.5", "integer from 2 to 1024"]),
    (["--param", "n_steps=4", "--param", "n_steps=8"], ["n_steps", "2 times"]),
    (["--param", "colour=red"], ["colour", "n_steps"]),
    (["--param", "n_steps"], ["KEY=VALUE"]),
])
def test_bad_params_exit_2_with_the_message(capsys, argv, words):
    code, out, err = _analyze(capsys, "--model", "vit-dot", "--analyzer", "integrated_gradients",
                              "--input", "sample:0", *argv)
    assert code == 2 and out == "" and "Traceback" not in err
    for w in words:
        assert w in err


@pytest.mark.parametrize("model, analyzer, source, words", [
    ("vit-dot", "integrated_gradients", "sample:99999", ["sample:99999", "0 to 999"]),
    ("vit-dot", "integrated_gradients", "sample:x", ["whole number"]),
    ("vit-dot", "capsule_routing", "sample:0", ["does not fit vit-dot", "integrated_gradients"]),
    ("vit-gpt", "integrated_gradients", "sample:0", ["unknown model", "vit-dot"]),
    ("vit-dot", "gradcam", "sample:0", ["unknown analyzer", "saliency"]),
    ("minilm", "integrated_gradients", "text:only one sentence", ["A||SENTENCE B"]),
])
def test_refusals_exit_2_with_a_people_message(capsys, model, analyzer, source, words):
    code, out, err = _analyze(capsys, "--model", model, "--analyzer", analyzer, "--input", source)
    assert code == 2 and "Traceback" not in err
    for w in words:
        assert w in err


def test_a_refused_file_gives_the_decoders_message(capsys, tmp_path):
    bad = tmp_path / "digit.png"
    bad.write_bytes(b"this is not a png at all")
    code, out, err = _analyze(capsys, "--model", "vit-dot", "--analyzer", "saliency", "--input", str(bad))
    assert code == 2 and out == "" and "Traceback" not in err and "digit.png" in err
    code, _, err = _analyze(capsys, "--model", "vit-dot", "--analyzer", "saliency", "--input", str(tmp_path / "no.png"))
    assert code == 2 and "cannot read" in err


def test_an_image_file_is_decoded_and_explained(capsys, tmp_path):
    from PIL import Image

    trained_or_skip("vit-dot")
    x, _ = model_zoo.load_split().heldout_tensor(1)
    path = tmp_path / "seven.png"
    Image.fromarray((x[0, 0].numpy() * 255).astype(np.uint8)).save(path)
    code, out, err = _analyze(capsys, "--model", "vit-dot", "--analyzer", "saliency", "--input", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["prediction"] in range(10)


def test_bench_ig_prints_a_markdown_table(capsys):
    from bench.ig import main

    assert main(["--models", "vae-2d", "--batches", "1,2", "--steps", "4", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("device: ")
    rows = [line for line in out.splitlines() if line.startswith("| vae-2d")]
    assert len(rows) == 2 and all(float(r.split("|")[-2]) > 0 for r in rows)


def test_bench_batch_times_every_batch_size_and_the_automatic_one(capsys):
    from bench.batch import IG_SWEEP, OCCLUSION_SWEEP, main

    assert main(["--models", "vae-2d", "--images", "1", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("device: cpu")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines() if line.startswith("| vae-2d")]
    assert [r[4] for r in rows] == [*map(str, IG_SWEEP), "auto", *map(str, OCCLUSION_SWEEP), "auto"]
    ratios = [float(r[6]) for r in rows]
    assert min(ratios) == 1.0 and all(r >= 1.0 for r in ratios)
    assert "off CUDA: the CPU default, 128" in rows[len(IG_SWEEP)][7]
