"""``zooscope analyze --model PATH``: a user's Hugging Face folder answers the command-line contract.

The JSON has the prediction with its label name and ``rel_error``; texts add their tokens (and the
readable words); ``--analyzer attention`` gives the attention per layer and head; every error exits 2
with one line on stderr. Runs ``app.cli.main`` in this process (the subprocess path is the zoo's test).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from app.cli import main as cli
from tests import hf_fixtures as fx

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("user-models")
    out = {f.__name__: f(root) for f in (fx.tiny_vit_folder, fx.tiny_resnet_folder, fx.tiny_bert_classifier_folder,
                                          fx.tiny_roberta_classifier_folder)}
    rgb = (np.random.default_rng(0).random((40, 52, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(root / "photo.png")
    out["photo"] = root / "photo.png"
    yield out
    from model_zoo import sources

    sources.forget_all()  # the folders the command line registered on the way


def run(argv, capsys):
    code = cli.main(["analyze", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_image_folder_ig_json_has_the_label_and_rel_error(folders, capsys):
    code, out, err = run(["--model", str(folders["tiny_vit_folder"]), "--analyzer", "integrated_gradients",
                          "--input", f"image:{folders['photo']}", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["prediction_label"] in ("cat", "dog", "bird")
    assert summary["prediction_label"] == summary["labels"][summary["prediction"]]
    assert summary["rel_error"] < 0.05


def test_text_folder_ig_json_has_tokens_words_and_completeness(folders, capsys):
    code, out, err = run(["--model", str(folders["tiny_roberta_classifier_folder"]), "--analyzer",
                          "integrated_gradients", "--input", "text:the film was a delight", "--json",
                          "--param", "baseline=mask", "--param", "n_steps=32"], capsys)
    assert code == 0, err
    s = json.loads(out)
    assert s["tokens"][0] == "<s>" and "Ġfilm" in s["tokens"] and "film" in s["words"]
    assert len(s["token_attributions"]) == len(s["tokens"])
    assert s["rel_error"] < 0.05 and s["prediction_label"] in ("negative", "positive")
    assert sum(s["token_attributions"]) == pytest.approx(s["f_x"] - s["f_baseline"], rel=0.05, abs=1e-6)


def test_attention_gives_every_layer_and_head(folders, capsys):
    code, out, err = run(["--model", str(folders["tiny_bert_classifier_folder"]), "--analyzer", "attention",
                          "--input", "text:great acting and a clever plot", "--json"], capsys)
    assert code == 0, err
    s = json.loads(out)
    attn = np.asarray(s["attention"])  # (layers, heads, T, T)
    assert attn.shape == (2, 2, len(s["tokens"]), len(s["tokens"]))
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-4)


@pytest.mark.parametrize("argv, expected", [
    (["--model", "{tiny_resnet_folder}", "--analyzer", "attention", "--input", "image:{photo}"], "does not fit"),
    (["--model", "{tiny_bert_classifier_folder}", "--analyzer", "integrated_gradients", "--input", "text:  "],
     "empty"),
    (["--model", "{tiny_bert_classifier_folder}", "--analyzer", "integrated_gradients", "--input", "text:hi",
      "--param", "baseline=black"], "baseline"),
    (["--model", "{tiny_vit_folder}", "--analyzer", "integrated_gradients", "--input", "sample:3"], "image:FILE"),
    (["--model", "{tiny_vit_folder}", "--analyzer", "integrated_gradients", "--input", "image:{missing}"],
     "cannot read"),
    (["--model", "{missing}", "--analyzer", "integrated_gradients", "--input", "image:{photo}"], "missing"),
])
def test_errors_exit_2_with_one_line(folders, capsys, argv, expected):
    names = {k: str(v) for k, v in folders.items()} | {"missing": str(folders["photo"].parent / "missing")}
    code, out, err = run([a.format(**names) for a in argv], capsys)
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err
