"""The command-line contract for the G2P models: ``--analyzer attention`` gives the output tokens and the alignment
(hard for monotonic, soft weights for soft); ``--analyzer integrated_gradients`` one attribution row and one
rel_error per output token."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli import main as cli
from model_zoo import get_spec


def needs(name: str) -> None:
    spec = get_spec(name)
    if not (spec.checkpoint_path.exists() and "per" in spec.metrics):
        pytest.skip(f"{name} is not trained yet")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["analyze", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["g2p-monotonic", "g2p-soft"])
def test_attention_gives_the_output_tokens_and_the_alignment(capsys, name):
    needs(name)
    code, out, err = run(capsys, "--model", name, "--analyzer", "attention", "--input", "text:Phoenix", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["analyzer"] == "sequence_alignment" and s["input_tokens"] == list("phoenix")
    a = np.array(s["alignment"], dtype=float)
    assert a.shape == (len(s["output_tokens"]), 7) and s["output_tokens"][0] == "F"
    if name == "g2p-monotonic":
        assert s["alignment_kind"] == "hard (test time)" and set(np.unique(a)) <= {0.0, 1.0}
        assert (a.sum(1) <= 1).all() and np.all(np.diff([p for p in s["positions"] if p >= 0]) >= 0)
    else:
        assert s["alignment_kind"] == "soft weights" and np.allclose(a.sum(1), 1, atol=1e-3)


def test_integrated_gradients_gives_a_row_and_a_rel_error_per_output_token(capsys):
    needs("g2p-monotonic")
    code, out, err = run(capsys, "--model", "g2p-monotonic", "--analyzer", "integrated_gradients",
                         "--input", "text:knight", "--param", "n_steps=32", "--json")
    assert code == 0, err
    s = json.loads(out)
    U = len(s["output_tokens"])
    assert len(s["attributions"]) == U == len(s["rel_error"]) and all(len(r) == 6 for r in s["attributions"])
    assert max(s["rel_error"]) < 0.05


@pytest.mark.parametrize("word, expected", [("text:h3llo", "cannot read ('3')"), ("phoenix", "text:WORD"),
                                            ("text:", "type a word")])
def test_a_bad_word_exits_2_with_one_message(capsys, word, expected):
    code, out, err = run(capsys, "--model", "g2p-soft", "--analyzer", "attention", "--input", word)
    assert code == 2 and out == "" and expected in err and "Traceback" not in err
