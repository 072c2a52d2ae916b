"""Whole-dataset analysis: per-example chunks on a real model, and an order-independent, known-answer summary."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from analyzers.dataset import (
    ChunkResult, DatasetParams, analyse_chunk, confidence_slice, gather, most_confused, summarise, summary_json,
    token_means, wilson, worst_explained,
)
from analyzers.params import ParamError

LABELS = tuple(str(d) for d in range(10))


@pytest.fixture(scope="module")
def vit():
    import model_zoo

    torch.set_num_threads(1)
    spec = model_zoo.get_spec("vit-dot")
    split = model_zoo.load_split()
    pick = np.arange(0, 1000, 125)[:6]  # one digit each of six classes
    x = split.x_heldout[pick].astype(np.float32)[:, None] / 255
    return spec, model_zoo.load("vit-dot", "cpu"), x, split.y_heldout[pick].astype(np.int64)


def test_chunk_on_a_trained_vit_is_faithful_and_complete(vit):
    spec, model, x, y = vit
    params = DatasetParams(n_steps=16, faithfulness="all", curve_steps=8)
    c = analyse_chunk(model, spec, x, y, np.arange(6), params)
    with torch.no_grad():
        assert (c.prediction == model.scores(torch.from_numpy(x)).argmax(1).numpy()).all()
    assert c.attributions.shape == (6, 1, 28, 28) and c.deletion.shape == (6, 3)
    assert (c.target == y).all()  # explain="label"
    assert np.all(np.isfinite(c.rel_error)) and np.median(c.rel_error) < 0.05
    assert np.all((c.confidence > 0) & (c.confidence <= 1))
    ig = c.methods.index("integrated_gradients")
    # IG orders pixels better than chance on a trained model: deletion falls faster, insertion rises faster
    assert c.deletion[:, ig].mean() < c.random_deletion.mean()
    assert c.insertion[:, ig].mean() > c.random_insertion.mean()


def test_summary_is_independent_of_chunk_order(vit):
    spec, model, x, y = vit
    params = DatasetParams(n_steps=4, faithfulness="integrated_gradients", curve_steps=4)
    a = analyse_chunk(model, spec, x[:3], y[:3], np.arange(3), params)
    b = analyse_chunk(model, spec, x[3:], y[3:], np.arange(3, 6), params)
    one = json.dumps(summary_json(summarise(gather([a, b]), LABELS)))
    two = json.dumps(summary_json(summarise(gather([b, a]), LABELS)))
    assert one == two
    assert gather([b, a]).index.tolist() == list(range(6))


def test_non_classifiers_are_refused_with_a_message():
    import model_zoo

    spec = model_zoo.get_spec("vae-2d")
    with pytest.raises(ParamError, match="image classifier"):
        analyse_chunk(model_zoo.build(spec), spec, np.zeros((1, 1, 28, 28), np.float32), [0], [0])


def _chunk(label, pred, conf, rel, maps, target=None, dele=None):
    n = len(label)
    dele = np.asarray(dele if dele is not None else np.zeros((n, 1)), dtype=np.float64)
    return ChunkResult(
        index=np.arange(n), label=np.asarray(label), prediction=np.asarray(pred), confidence=np.asarray(conf, float),
        target=np.asarray(target if target is not None else label), rel_error=np.asarray(rel, float),
        attributions=np.asarray(maps, np.float32), deletion=dele, insertion=-dele,
        random_deletion=np.zeros(n), random_insertion=np.zeros(n), methods=("a",) if dele.shape[1] == 1 else ("a", "b"))


def test_summary_known_answers():
    maps = np.zeros((4, 1, 28, 28))
    maps[0, 0, 0, 0], maps[1, 0, 0, 0], maps[2, 0, 0, 0], maps[3, 0, 0, 0] = 1, -3, 2, 5
    c = _chunk([0, 0, 1, -1], [0, 1, 1, 1], [0.9, 0.8, 0.6, 0.99], [0.01, np.nan, 0.03, 0.5], maps,
               target=[0, 0, 1, 1], dele=[[1, 2], [3, 2], [5, 2], [7, 2]])
    s = summarise(c, ("0", "1"))
    assert (s.n, s.n_labelled, s.correct) == (4, 3, 2)
    assert s.confusion.tolist() == [[1, 1], [0, 1]]
    assert s.accuracy == pytest.approx(2 / 3)
    assert s.mean_rel_error == pytest.approx((0.01 + 0.03 + 0.5) / 3)  # NaN left out
    assert s.class_maps[0, 0, 0, 0] == pytest.approx(2.0) and s.class_maps[1, 0, 0, 0] == pytest.approx(3.5)
    assert s.mean_deletion.tolist() == [4.0, 2.0] and s.ranking() == ["b", "a"]  # lower deletion AUC first
    out = summary_json(s)
    assert out["class_attribution_sum"] == {"0": 2.0, "1": 3.5}
    assert out["accuracy_ci95"] == [round(v, 6) for v in wilson(2, 3)]


def test_wilson_matches_the_heldout_evaluation():
    from app.runtime.evaluation import HeldoutEvaluation

    truth = np.array([0] * 50 + [1] * 50)
    pred = truth.copy()
    pred[:7] = 1
    ev = HeldoutEvaluation("t", ("0", "1"), truth, pred)
    assert wilson(93, 100) == pytest.approx(ev.interval())


def test_worst_explained_and_most_confused_orders():
    maps = np.zeros((4, 1, 28, 28))
    c = _chunk([0, 1, 1, 0], [0, 0, 0, 1], [0.9, 0.7, 0.95, 0.6], [0.2, np.nan, 0.5, 0.01], maps)
    assert worst_explained(c).tolist() == [2, 0, 3]
    assert most_confused(c).tolist() == [2, 1, 3]
    assert confidence_slice(np.array([0.1, 0.5, 0.95, 1.0])).tolist() == [0, 1, 3, 4]


def test_token_means_per_class():
    out = token_means([("[CLS]", "good", "film", "[SEP]"), ("[CLS]", "good", "[SEP]"), ("[CLS]", "bad", "[SEP]")],
                      [np.array([9, 1.0, 0.5, 9]), np.array([9, 3.0, 9]), np.array([9, -2.0, 9])], [1, 1, 0], 2)
    assert out[1] == [("good", 2.0, 2), ("film", 0.5, 1)]
    assert out[0] == [("bad", -2.0, 1)]


def test_params_bounds():
    with pytest.raises(ParamError):
        DatasetParams(n_steps=1)
    assert DatasetParams(faithfulness="none").methods() == ()


def test_no_streamlit():
    code = "import sys, analyzers.dataset; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- text classifiers

SENTIMENT = ("negative", "positive")


@pytest.fixture(scope="module")
def minilm():
    import model_zoo

    torch.set_num_threads(1)
    return model_zoo.get_spec("minilm-sentiment"), model_zoo.load("minilm-sentiment", "cpu")


def test_text_chunk_gives_words_and_an_order_independent_summary(minilm):
    spec, model = minilm
    texts = ["A wonderful, moving film.", "Dull and far too long.", "I loved every minute of it.",
             "The plot makes no sense at all."]
    y = np.array([1, 0, 1, -1])
    params = DatasetParams(n_steps=8)
    chunks = [analyse_chunk(model, spec, texts[:2], y[:2], [0, 1], params),
              analyse_chunk(model, spec, texts[2:], y[2:], [2, 3], params)]
    a, b = gather(chunks), gather(chunks[::-1])
    with torch.no_grad():
        enc = model.tokenize(texts)
        pred = model.scores(enc["input_ids"], enc["attention_mask"]).argmax(1).numpy()
    assert (a.prediction == pred).all() and a.methods == () and a.deletion.shape == (4, 0)
    assert a.target[3] == a.prediction[3] and (a.target[:3] == y[:3]).all()  # no label: the predicted class
    assert a.words[1][0].lower() == "dull" and len(a.words[1]) == len(a.attributions[1])
    assert np.isfinite(a.rel_error).all()
    js = summary_json(summarise(a, SENTIMENT))
    assert json.dumps(js) == json.dumps(summary_json(summarise(b, SENTIMENT)))
    assert js["labelled"] == 3 and "mean_deletion_auc" not in js and js["confusion"] == summarise(
        a, SENTIMENT).confusion.tolist()
    words = {w for w, _, _ in js["class_top_words"]["positive"]}
    assert words and words <= {w for i in (0, 2) for w in a.words[i]} | set(a.words[3] if a.target[3] else ())


def test_text_needs_a_classifier(minilm):
    import model_zoo

    spec = model_zoo.get_spec("vae-2d")
    with pytest.raises(ParamError, match="image classifier or a text classifier"):
        analyse_chunk(None, spec, ["hi"], [0], [0])
