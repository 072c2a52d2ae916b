"""The command-line contract for the user's sequence-to-sequence and causal-LM folders (issue 18):
``--analyzer attention --input text:STRING --json`` gives the generated tokens and the attention per layer and
head (encoder, decoder, cross); ``--analyzer integrated_gradients`` one attribution row and one rel_error per
generated token; bad input exits 2 with one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.cli import main as cli
from tests.hf_fixtures import tiny_gpt2_folder, tiny_t5_folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("generative")
    yield {"causal-lm": str(tiny_gpt2_folder(root)), "seq2seq": str(tiny_t5_folder(root))}
    from model_zoo import sources

    sources.forget_all()  # the folders were registered on the way: leave the table as found


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["analyze", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["causal-lm", "seq2seq"])
def test_attention_gives_the_generated_tokens_and_attention_per_layer_and_head(capsys, folders, kind):
    code, out, err = run(capsys, "--model", folders[kind], "--analyzer", "attention", "--input",
                         "text:the film was a delight", "--param", "max_new_tokens=3", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["analyzer"] == "generation_attention" and s["kind"] == kind
    n, src = len(s["output_tokens"]), s["input_tokens"]
    assert 1 <= n <= 3 and len(src) == 5
    self_attn = np.array(s["self_attention"])
    t = len(s["decoder_tokens"])
    assert self_attn.shape == (2, 2, t, t) and np.allclose(self_attn.sum(-1), 1, atol=1e-4)
    if kind == "seq2seq":
        assert np.array(s["encoder_attention"]).shape == (2, 2, 5, 5)
        assert np.array(s["cross_attention"]).shape == (2, 2, t, 5)
    else:
        assert t == 5 + n - 1 and "cross_attention" not in s


@pytest.mark.parametrize("kind", ["causal-lm", "seq2seq"])
def test_integrated_gradients_gives_a_row_and_a_rel_error_per_generated_token(capsys, folders, kind):
    code, out, err = run(capsys, "--model", folders[kind], "--analyzer", "integrated_gradients", "--input",
                         "text:the film was a delight", "--param", "max_new_tokens=2", "--param", "n_steps=128",
                         "--json")
    assert code == 0, err
    s = json.loads(out)
    n = len(s["output_tokens"])
    assert s["analyzer"] == "generation_attribution"
    assert np.array(s["attributions"]).shape == (n, 5 + len(s["prefix_tokens"]))
    assert isinstance(s["rel_error"], list) and len(s["rel_error"]) == n  # a list even for one token
    assert max(s["rel_error"]) < 0.01


def test_bad_input_exits_2_with_one_line(capsys, folders):
    code, out, err = run(capsys, "--model", folders["causal-lm"], "--analyzer", "attention", "--input", "sample:3")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "text:" in err
    code, _, err = run(capsys, "--model", folders["causal-lm"], "--analyzer", "attention", "--input", "text:hi",
                       "--param", "max_new_tokens=999")
    assert code == 2 and "max_new_tokens" in err and "Traceback" not in err
    code, _, err = run(capsys, "--model", folders["seq2seq"], "--analyzer", "latent_projection", "--input", "text:hi")
    assert code == 2 and "generation_attention" in err
