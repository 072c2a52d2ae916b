"""Every analysis that fits runs on tiny Hugging Face models of several architectures, and completeness holds.

The folders come from :mod:`tests.hf_fixtures` (built from configs, never downloaded); the models are
wrapped by :mod:`model_zoo.adapters` here directly, so these tests check the analyzers alone.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from analyzers import ParamError
from analyzers.attention import patch_grid
from analyzers.attribution import occlusion_window
from analyzers.attribution_params import IGParams, OcclusionParams
from analyzers.faithfulness import layer_groups, patch_side
from analyzers.registry import compatible, run_analyzer
from analyzers.text_classification import TextIGParams
from analyzers.tokens import merge, merge_scores, scheme
from model_zoo.spec import InputSpec
from tests import hf_fixtures as fx

pytestmark = pytest.mark.filterwarnings("ignore")
THRESHOLD = 0.05


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _image_model(folder):
    from transformers import AutoModelForImageClassification

    from model_zoo.adapters import HFImageClassifier, ImagePrep

    hf = AutoModelForImageClassification.from_pretrained(folder, attn_implementation="eager", use_safetensors=True)
    c = int(hf.config.num_channels)
    side = int(getattr(hf.config, "image_size", 32))
    model = HFImageClassifier(hf, ImagePrep(c, (side, side), (0.5,) * c, (0.5,) * c))
    caps = {"gradients", "classifier"} | ({"attention"} if model.has_attention else set())
    labels = tuple(hf.config.id2label[i] for i in range(len(hf.config.id2label)))
    spec = SimpleNamespace(name=folder.name, family="image-classifier", input=InputSpec("image", (c, side, side), "",
                           labels), capabilities=frozenset(caps), extra={"source": "folder"}, config=hf.config)
    return model, spec


def _text_model(folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from model_zoo.adapters import HFTextClassifier

    hf = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager", use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(folder)
    labels = tuple(hf.config.id2label[i] for i in range(len(hf.config.id2label)))
    spec = SimpleNamespace(name=folder.name, family="text-classifier", input=InputSpec("text", (), "", labels,
                           type(tok).__name__), capabilities=frozenset({"gradients", "classifier", "attention", "text"}),
                           extra={"source": "folder"}, config=hf.config)
    return HFTextClassifier(hf, tok, 64), spec


IMAGE_FOLDERS = {"vit": fx.tiny_vit_folder, "vit-gray": fx.tiny_gray_vit_folder, "resnet": fx.tiny_resnet_folder}
TEXT_FOLDERS = {"bert": fx.tiny_bert_classifier_folder, "distilbert": fx.tiny_distilbert_classifier_folder,
                "roberta": fx.tiny_roberta_classifier_folder}
TEXTS = ["the film was a delight from start to finish", "boring , slow and far too long"]


@pytest.fixture(scope="module")
def image_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return {k: _image_model(f(root)) for k, f in IMAGE_FOLDERS.items()}


@pytest.fixture(scope="module")
def text_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("texts")
    return {k: _text_model(f(root)) for k, f in TEXT_FOLDERS.items()}


@pytest.mark.parametrize("kind", list(IMAGE_FOLDERS))
def test_every_fitting_image_analysis_runs_and_ig_is_complete(image_models, kind):
    model, spec = image_models[kind]
    names = compatible(spec)
    assert {"integrated_gradients", "saliency", "input_x_gradient", "smoothgrad", "gradient_shap", "occlusion",
            "deletion_insertion", "randomisation_check"} <= set(names)
    assert ("attention_maps" in names) == (kind != "resnet")  # ResNet has no attention: the page says so
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, *spec.input.shape, generator=g)
    for name in names:
        inputs = torch.rand(3, *spec.input.shape, generator=g) if name == "head_statistics" else x
        result = run_analyzer(name, model, spec, inputs)
        if hasattr(result, "attributions") and name != "randomisation_check":
            assert result.attributions.shape == x.shape, name
            assert np.isfinite(result.attributions).all(), name
    ig = run_analyzer("integrated_gradients", model, spec, x, IGParams(n_steps=64))
    assert (ig.rel_error < THRESHOLD).all(), ig.rel_error
    assert ig.labels == ("cat", "dog", "bird")


def test_app_arrays_with_a_batch_axis_reach_the_model(image_models):
    """The app passes (B, 1, C, H, W) for RGB arrays (B, C, H, W): the same result as (B, C, H, W)."""
    model, spec = image_models["vit"]
    x = torch.rand(1, *spec.input.shape, generator=torch.Generator().manual_seed(1))
    a = run_analyzer("saliency", model, spec, x).attributions
    b = run_analyzer("saliency", model, spec, x[:, None]).attributions
    np.testing.assert_allclose(a, b)


def test_vit_attention_has_cls_maps_on_the_patch_grid(image_models):
    model, spec = image_models["vit"]
    result = run_analyzer("attention_maps", model, spec, torch.rand(1, 3, 32, 32))
    L, B, H, T, _ = result.attentions.shape
    assert (L, B, H, T) == (2, 1, 2, 1 + 4 * 4)  # CLS + 4x4 patches of 8 px
    np.testing.assert_allclose(result.attentions.sum(-1), 1.0, atol=1e-5)
    assert result.cls_maps.shape == (2, 1, 2, 32, 32) and result.rollout_map.shape == (1, 32, 32)
    assert result.kind == "softmax"
    assert patch_grid(197) == (1, 14) and patch_grid(198) == (2, 14)  # ViT-B/16, DeiT at 224


def test_heldout_mean_baseline_is_refused_on_user_images(image_models):
    model, spec = image_models["vit"]
    with pytest.raises(ParamError, match="28x28"):
        run_analyzer("integrated_gradients", model, spec, torch.rand(1, 3, 32, 32), IGParams(baseline="heldout_mean"))


def test_occlusion_window_and_patches_scale_with_the_image():
    p = OcclusionParams()
    assert occlusion_window(p, (28, 28)) == (4, 2)
    assert occlusion_window(p, (224, 224)) == (32, 16)
    assert patch_side((28, 28)) == 4 and patch_side((224, 224)) == 16


def test_randomisation_groups_follow_the_hf_layers(image_models):
    model, spec = image_models["vit"]
    groups = [g for g, _ in layer_groups(model, spec, torch.rand(1, 3, 32, 32))]
    assert groups[0] == "hf.classifier" and groups[-1] == "hf.vit.embeddings"
    layers = [g for g in groups if g.startswith("hf.vit.") and g[-1].isdigit()]
    assert [g[-1] for g in layers] == ["1", "0"]  # one group per transformer layer, from the output down


@pytest.mark.parametrize("kind", list(TEXT_FOLDERS))
@pytest.mark.parametrize("baseline", ["pad", "mask", "zero"])
def test_text_classifier_ig_is_complete_for_every_baseline(text_models, kind, baseline):
    model, spec = text_models[kind]
    r = run_analyzer("integrated_gradients", model, spec, TEXTS, TextIGParams(baseline=baseline, n_steps=32))
    assert r.attributions.shape == r.inputs.shape == r.token_mask.shape
    assert (r.rel_error < THRESHOLD).all(), (kind, baseline, r.rel_error)
    np.testing.assert_allclose(r.attributions.sum(1), r.f_x - r.f_baseline, rtol=THRESHOLD, atol=1e-4)
    assert r.labels == ("negative", "positive") and r.target_label == "logit of the target class"
    assert list(r.targets) == list(r.predictions)  # default target: the predicted class
    special = np.isin(r.inputs, model.tokenizer.all_special_ids) | (r.token_mask == 0)
    assert np.all(r.attributions[special] == 0)  # special tokens and padding are the same in the baseline


def test_text_target_and_ig_params_from_the_image_form(text_models):
    model, spec = text_models["bert"]
    r = run_analyzer("integrated_gradients", model, spec, TEXTS[:1], IGParams(n_steps=16, target=1))
    assert r.targets.tolist() == [1] and r.info.params["baseline"] == "pad"
    with pytest.raises(ParamError, match="target=5"):
        run_analyzer("integrated_gradients", model, spec, TEXTS[:1], TextIGParams(target=5))
    with pytest.raises(ParamError, match="non-empty texts"):
        run_analyzer("integrated_gradients", model, spec, ["  "])


def test_mask_baseline_without_a_mask_token_is_refused(text_models):
    model, spec = text_models["bert"]
    saved = model.tokenizer.mask_token
    model.tokenizer.mask_token = None
    try:
        with pytest.raises(ParamError, match="has none: choose baseline pad or zero"):
            run_analyzer("integrated_gradients", model, spec, TEXTS[:1], TextIGParams(baseline="mask"))
    finally:
        model.tokenizer.mask_token = saved


def test_text_classifier_attention_explains_the_class(text_models):
    model, spec = text_models["roberta"]
    r = run_analyzer("attention_maps", model, spec, TEXTS)
    assert r.attentions.shape[:3] == (2, 2, 2) and r.grad_rollout is not None
    assert r.predictions.tolist() == r.targets.tolist() and r.predictions.min() >= 0
    stats = run_analyzer("head_statistics", model, spec, TEXTS)
    assert stats.entropy.shape == (2, 2) and (stats.dependence > 0).all()


# --------------------------------------------------------------------------- readable words


def test_wordpiece_pieces_merge_into_words():
    words = merge(["[CLS]", "un", "##believ", "##able", "film", "!", "[SEP]"])
    assert [w.text for w in words] == ["[CLS]", "unbelievable", "film", "!", "[SEP]"]
    assert words[1].pieces == ("un", "##believ", "##able") and words[1].tooltip == "un | ##believ | ##able"
    assert (words[1].start, words[1].end) == (1, 4) and words[0].special


def test_byte_level_bpe_pieces_merge_and_decode():
    pieces = ["<s>", "The", "Ġcaf", "Ã©", "Ġwas", "Ġgreat", "!", "</s>", "<pad>"]
    assert scheme(pieces) == "byte-bpe"
    assert [w.text for w in merge(pieces)] == ["<s>", "The", "café", "was", "great!", "</s>", "<pad>"]


def test_sentencepiece_pieces_merge():
    assert [w.text for w in merge(["▁un", "believ", "able", "▁film", "</s>"])] == ["unbelievable", "film", "</s>"]


def test_word_scores_add_up_to_the_pieces():
    pieces = ["[CLS]", "un", "##able", "film", "[SEP]"]
    scores = [0.0, 0.25, 0.5, -1.0, 0.0]
    merged = merge_scores(pieces, scores)
    assert [(w.text, s) for w, s in merged] == [("[CLS]", 0.0), ("unable", 0.75), ("film", -1.0), ("[SEP]", 0.0)]
    assert sum(s for _, s in merged) == pytest.approx(sum(scores))
    with pytest.raises(ValueError):
        merge_scores(pieces, scores[:2])


def test_sentence_encoder_folder_runs_every_fitting_analysis(tmp_path):
    """A user's sentence encoder (loaded as the app loads it) gets MiniLM's analyses: pair IG, attention, heads."""
    import model_zoo
    from model_zoo import sources

    try:
        (name,) = model_zoo.register_folders([fx.tiny_sentence_encoder_folder(tmp_path)])
        spec, model = model_zoo.get_spec(name), model_zoo.load(name, "cpu")
        names = compatible(spec)
        assert {"integrated_gradients", "attention_maps", "head_statistics"} <= set(names)
        pairs = [("great acting and a clever plot", "i loved every minute of it !")]
        ig = run_analyzer("integrated_gradients", model, spec, pairs, IGParams(n_steps=64))
        assert (ig.rel_error < THRESHOLD).all(), ig.rel_error
        maps = run_analyzer("attention_maps", model, spec, [a for a, _ in pairs] + [b for _, b in pairs])
        np.testing.assert_allclose(maps.attentions[:, 0].sum(-1)[..., : len(maps.tokens[0])], 1.0, atol=1e-5)
        assert run_analyzer("head_statistics", model, spec, list(pairs[0])).entropy.shape == (2, 2)
    finally:
        sources.forget_all()
