"""Hugging Face folders of several architectures load through the adapters and are listed beside the zoo."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
from PIL import Image

import model_zoo
from model_zoo import REGISTRY, sources
from model_zoo.adapters import HFGenerative, HFImageClassifier, HFSentenceEncoder, HFTextClassifier
from tests import hf_fixtures as fx


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv("ZOOSCOPE_MODELS", raising=False)
    sources.forget_all()
    yield
    sources.forget_all()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {name: make(root) for name, make in fx.ALL_FOLDERS.items()}


EXPECT = {  # name -> (family, capabilities, adapter)
    "tiny-vit": ("image-classifier", {"gradients", "classifier", "attention"}, HFImageClassifier),
    "tiny-vit-gray": ("image-classifier", {"gradients", "classifier", "attention"}, HFImageClassifier),
    "tiny-resnet": ("image-classifier", {"gradients", "classifier"}, HFImageClassifier),
    "tiny-bert-sentiment": ("text-classifier", {"gradients", "classifier", "attention", "text"}, HFTextClassifier),
    "tiny-distilbert": ("text-classifier", {"gradients", "classifier", "attention", "text"}, HFTextClassifier),
    "tiny-roberta-sentiment": ("text-classifier", {"gradients", "classifier", "attention", "text"}, HFTextClassifier),
    "tiny-sentence-encoder": ("sentence-encoder", {"gradients", "attention", "text"}, HFSentenceEncoder),
    "tiny-t5": ("seq2seq", {"text", "generation"}, HFGenerative),
    "tiny-gpt2": ("causal-lm", {"text", "generation"}, HFGenerative),
}


@pytest.mark.parametrize("name", list(EXPECT))
def test_each_architecture_is_described_and_loads_into_its_adapter(folders, name):
    family, caps, adapter = EXPECT[name]
    assert model_zoo.register_folders([folders[name]]) == [name]
    spec = model_zoo.get_spec(name)
    assert (spec.family, set(spec.capabilities), spec.source) == (family, caps, "folder")
    assert spec.extra["path"] == str(folders[name].resolve()) and len(spec.sha256) == 64
    assert spec.extra["parameters"] > 1000 and spec.extra["architecture"]
    model = model_zoo.load(name, "cpu")
    assert isinstance(model, adapter) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    # generative models' attention is drawn per generated token on the Generation page, not by attention_maps
    assert model.has_attention == ("attention" in caps or "generation" in caps)


def test_image_classifiers_preprocess_any_picture_to_their_size_and_channels(folders):
    for name, shape in (("tiny-vit", (3, 32, 32)), ("tiny-vit-gray", (1, 28, 28)), ("tiny-resnet", (3, 32, 32))):
        model_zoo.register_folders([folders[name]])
        spec, model = model_zoo.get_spec(name), model_zoo.load(name, "cpu")
        assert spec.input.shape == shape and spec.input.labels == ("cat", "dog", "bird")
        assert "preprocessor_config.json" in spec.input.normalisation
        x = model.preprocess(Image.new("RGB", (97, 41), (255, 0, 0)))
        assert tuple(x.shape) == shape and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        out = model(x[None], output_attentions=True)
        assert out.logits.shape == (1, 3)
        torch.testing.assert_close(model.scores(x[None]), out.logits)
        if model.has_attention:  # (B, heads, T, T) per layer, rows sum to one
            assert len(out.attentions) == 2 and out.attentions[0].shape[1] == 2
            torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(out.attentions[0].shape[:-1]))
        else:
            assert out.attentions == ()
    # normalised inside with the processor's mean/std: scores equal the raw model's on (x - 0.5) / 0.5
    vit = model_zoo.load("tiny-vit", "cpu")
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(vit.scores(x), vit.hf(pixel_values=(x - 0.5) / 0.5).logits)


def test_the_convnext_style_processor_resizes_then_centre_crops(folders):
    model_zoo.register_folders([folders["tiny-resnet"]])
    model = model_zoo.load("tiny-resnet", "cpu")
    assert model.prep.resize == int(32 / 1.0) and model.prep.crop == (32, 32)
    img = Image.new("RGB", (64, 32))
    img.paste((255, 255, 255), (0, 0, 16, 32))  # a white band at the far left is cropped away
    assert float(model.preprocess(img).max()) == 0.0


def test_text_classifiers_tokenize_and_give_label_names(folders):
    for name in ("tiny-bert-sentiment", "tiny-distilbert", "tiny-roberta-sentiment"):
        model_zoo.register_folders([folders[name]])
        spec, model = model_zoo.get_spec(name), model_zoo.load(name, "cpu")
        assert spec.input.modality == "text" and spec.input.labels == ("negative", "positive")
        enc = model.tokenize(["the film was a delight", "dull " * 200])
        assert set(enc) == {"input_ids", "attention_mask"} and enc["input_ids"].shape[1] == model.max_tokens == 64
        out = model(**enc, output_attentions=True)
        assert out.logits.shape == (2, 2) and len(out.attentions) == 2
        emb = model.embedding_layer(enc["input_ids"])
        torch.testing.assert_close(model(inputs_embeds=emb, attention_mask=enc["attention_mask"]).logits, out.logits)
    pieces = model_zoo.load("tiny-roberta-sentiment", "cpu").tokenizer.tokenize("the films loved")
    assert any(p.startswith("Ġ") for p in pieces)


def test_sentence_encoder_pools_as_its_folder_says(folders):
    model_zoo.register_folders([folders["tiny-sentence-encoder"]])
    model = model_zoo.load("tiny-sentence-encoder", "cpu")
    assert (model.pooling, model.normalize) == ("mean", True)
    emb = model.embed(["hello world", "great acting and a clever plot"])
    assert emb.shape == (2, 32)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))


def test_generative_models_generate_tokens(folders):
    for name in ("tiny-t5", "tiny-gpt2"):
        model_zoo.register_folders([folders[name]])
        tokens = model_zoo.load(name, "cpu").generate("the film was", max_new_tokens=4)
        assert 1 <= len(tokens) <= 4 and all(isinstance(t, str) for t in tokens)


def test_names_never_shadow_the_zoo_and_collisions_get_a_suffix(tmp_path):
    a = fx.tiny_vit_folder(tmp_path / "a", name="vit-dot")
    b = fx.tiny_vit_folder(tmp_path / "b", name="vit-dot")
    assert model_zoo.register_folders([a, b]) == ["vit-dot-2", "vit-dot-3"]
    assert model_zoo.get_spec("vit-dot") is REGISTRY["vit-dot"]
    assert model_zoo.register_folders([a]) == ["vit-dot-2"]  # registering again is idempotent
    names = list(model_zoo.all_models())
    assert names[: len(REGISTRY)] == list(REGISTRY) and names[-2:] == ["vit-dot-2", "vit-dot-3"]


def test_zoosope_models_env_takes_a_folder_of_folders_or_a_path_list(tmp_path, monkeypatch):
    fx.tiny_vit_folder(tmp_path / "many")
    fx.tiny_resnet_folder(tmp_path / "many")
    single = fx.tiny_gpt2_folder(tmp_path / "one")
    monkeypatch.setenv("ZOOSCOPE_MODELS", os.pathsep.join([str(tmp_path / "many"), str(single)]))
    assert {"tiny-vit", "tiny-resnet", "tiny-gpt2"} <= set(model_zoo.all_models())
    assert model_zoo.get_spec("tiny-gpt2").family == "causal-lm"


def test_resolve_model_takes_names_and_paths_and_sha256_follows_the_weights(tmp_path):
    folder = fx.tiny_vit_folder(tmp_path)
    assert model_zoo.resolve_model("vit-dot") == "vit-dot"
    name = model_zoo.resolve_model(str(folder))
    assert name == "tiny-vit" and model_zoo.resolve_model(name) == name
    before = model_zoo.current_sha256(name)
    assert before == model_zoo.get_spec(name).sha256 == model_zoo.get_spec(name).extra["sha256"]
    fx.tiny_vit_folder(tmp_path, image_size=32, channels=3)  # same weights again: same hash
    assert model_zoo.current_sha256(name) == before
    torch.manual_seed(1)
    model = model_zoo.load(name, "cpu").hf
    model.classifier.bias.data += 1
    model.save_pretrained(folder, safe_serialization=True)
    assert model_zoo.current_sha256(name) not in ("", before)
    with pytest.raises(KeyError, match="known"):
        model_zoo.resolve_model("no-such-model")


def test_sharded_weights_load_and_hash_over_every_shard(tmp_path):
    folder = fx.tiny_bert_classifier_folder(tmp_path)
    model = model_zoo.load(model_zoo.resolve_model(str(folder)), "cpu").hf
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, safe_serialization=True, max_shard_size="20KB")
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (sharded / f).write_bytes((folder / f).read_bytes())
    assert len(list(sharded.glob("*.safetensors"))) > 1
    spec = sources.folder_spec(sharded)
    enc = sources.load_folder(spec.config).tokenize(["great acting"])
    assert sources.load_folder(spec.config)(**enc).logits.shape == (1, 2)


def test_the_card_carries_the_readme_capped(tmp_path):
    folder = fx.tiny_vit_folder(tmp_path)
    (folder / "README.md").write_text("# Mine\n\n" + "word " * 10_000)
    spec = sources.folder_spec(folder)
    assert spec.extra["readme"].startswith("# Mine") and len(spec.extra["readme"]) == sources.README_CHARS


def test_model_zoo_still_imports_no_streamlit():
    import subprocess

    code = "import model_zoo, model_zoo.sources, model_zoo.plugins, sys; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_task_of_reads_the_architecture():
    assert sources.task_of({"architectures": ["DeiTForImageClassificationWithTeacher"]}) == "image-classifier"
    assert sources.task_of({"architectures": ["BartForConditionalGeneration"]}) == "seq2seq"
    assert sources.task_of({"architectures": ["LlamaForCausalLM"]}) == "causal-lm"
    assert sources.task_of({"architectures": ["BertForMaskedLM"]}) == "sentence-encoder"
    assert sources.task_of(json.loads('{"model_type": "bert"}')) == "sentence-encoder"
