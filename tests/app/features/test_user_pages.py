"""The pages' state and helpers for the user's own models: links round-trip, inputs fit each model, charts stay light."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import model_zoo
from app.charts.attribution import image_cells, user_image_chart, word_attribution_frame
from app.features.attention import AttentionView
from app.features.attribution import AttributionView, offers_sanity_check
from app.features.compare import compare_models, on_digit_grid, pixels_for
from app.links import catalogue
from app.runtime.images import decode_for_model
from app.runtime.inputs import InputError, image_size_label, uses_model_preprocessing
from app.runtime.models import loaded_model
from model_zoo import sources
from tests import hf_fixtures as fx

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    sources.forget_all()  # folders another test module registered
    names = model_zoo.register_folders([fx.tiny_vit_folder(root), fx.tiny_bert_classifier_folder(root),
                                        fx.tiny_resnet_folder(root)])
    assert names == ["tiny-vit", "tiny-bert-sentiment", "tiny-resnet"]
    yield names
    sources.forget_all()


def test_catalogue_offers_user_models_where_they_fit(served):
    assert {"tiny-vit", "tiny-resnet", "tiny-bert-sentiment"} <= set(catalogue.attribution_models())
    assert "tiny-vit" in catalogue.attention_models() and "tiny-resnet" not in catalogue.attention_models()
    assert catalogue.attribution_methods("tiny-bert-sentiment") == ("integrated_gradients",)
    assert catalogue.params_class("integrated_gradients", "tiny-bert-sentiment").__name__ == "TextIGParams"
    assert catalogue.default_text_model() in ("minilm-sentiment", "minilm")
    assert "tiny-bert-sentiment" in compare_models() and "tiny-vit" in compare_models()  # text compares on a sentence
    assert not offers_sanity_check("tiny-bert-sentiment") and offers_sanity_check("tiny-vit")


def test_text_classifier_links_round_trip(served):
    query = {"model": "tiny-bert-sentiment", "method": "integrated_gradients", "text": "a clever plot",
             "baseline": "mask", "n_steps": "32"}
    view, problems = AttributionView.from_query(query)
    assert problems == () and view.text == "a clever plot"
    assert view.params_object().baseline == "mask"
    assert view.to_query() == {"model": "tiny-bert-sentiment", "method": "integrated_gradients",
                               "text": "a clever plot", "baseline": "mask", "n_steps": "32"}
    bad, problems = AttributionView.from_query({**query, "baseline": "black"})
    assert problems and "baseline" in problems[0]


def test_attention_links_for_classifiers_and_models_without_attention(served):
    view, problems = AttentionView.from_query({"model": "tiny-bert-sentiment", "text": "great acting"})
    assert problems == () and view.texts[0] == "great acting"
    assert view.to_query()["text"] == "great acting" and "a" not in view.to_query()
    view, problems = AttentionView.from_query({"model": "tiny-resnet"})
    assert view.model == "vit-dot" and any("tiny-resnet has no attention to show" in p for p in problems)


def _png(size=(50, 40), mode="RGB") -> bytes:
    buf = io.BytesIO()
    rgb = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads_are_prepared_by_the_models_own_preprocessing(served):
    model = loaded_model("tiny-vit").model
    spec = model_zoo.get_spec("tiny-vit")
    assert uses_model_preprocessing(spec) and not uses_model_preprocessing(model_zoo.get_spec("vit-dot"))
    assert image_size_label(spec) == "32 × 32 RGB"
    for mode in ("RGB", "L", "RGBA", "P"):
        decoded = decode_for_model(_png(mode=mode), model.preprocess)
        assert decoded.pixels.shape == (3, 32, 32) and 0 <= decoded.pixels.min() and decoded.pixels.max() <= 1
        assert decoded.display.shape[-1] == 3
    with pytest.raises(InputError):
        decode_for_model(b"not an image", model.preprocess)


def test_compare_gives_a_digit_to_every_image_model(served):
    digit = np.zeros((28, 28), dtype=np.float32)
    digit[6:22, 12:16] = 1.0
    assert pixels_for("vit-dot", digit) is digit
    seen = pixels_for("tiny-vit", digit)
    assert seen.shape == (1, 3, 32, 32)
    attribution = np.random.default_rng(1).random((3, 32, 32)).astype(np.float32)
    grid = on_digit_grid(attribution)
    assert grid.shape == (28, 28) and grid.sum() == pytest.approx(attribution.sum(), rel=1e-2)  # area-resampled


def test_large_image_heatmaps_stay_light():
    image = np.random.default_rng(2).random((3, 224, 224)).astype(np.float32)
    attr = np.random.default_rng(3).normal(size=(3, 224, 224))
    grey, cells, uri = image_cells(image, attr)
    assert grey.shape == cells.shape == (56, 56) and uri.startswith("data:image/png;base64,")
    assert cells.sum() == pytest.approx(attr.sum())  # blocks are summed: totals kept
    chart = user_image_chart(image, attr).to_dict()
    assert max(len(v) for v in chart["datasets"].values()) == 56 * 56


def test_words_merge_pieces_for_display():
    df = word_attribution_frame(("[CLS]", "un", "##able", "x", "[SEP]"), np.array([0.0, 1.0, 2.0, 3.0, 0.0]))
    assert list(df["word"]) == ["[CLS]", "unable", "x", "[SEP]"] and list(df["score"])[1] == 3.0
    assert df["pieces"][1] == "un | ##able"


def test_a_text_only_link_opens_the_default_text_model(served):
    view, problems = AttributionView.from_query({"text": "a clever plot"})
    default = catalogue.default_text_model()
    if catalogue.is_text_classifier_model(default):  # minilm-sentiment, once the zoo has it
        assert view.model == default and view.text == "a clever plot" and problems == ()
    else:
        assert view.model == "vit-dot"


def test_a_share_says_when_the_folders_weights_changed(served, tmp_path):
    from app.runtime.share import SavedView

    spec = model_zoo.get_spec("tiny-vit")
    saved = SavedView(link="x", page="attribution", title="t", view={}, inputs={}, results={},
                      checkpoints={"tiny-vit": spec.sha256, "vit-dot": model_zoo.get_spec("vit-dot").sha256},
                      versions={}, created_at="now")
    assert saved.changed_models() == {}
    weights = next(p for p in sorted(__import__("pathlib").Path(spec.extra["path"]).glob("*.safetensors")))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte of the weights changed
    weights.write_bytes(bytes(data))
    changed = saved.changed_models()
    assert list(changed) == ["tiny-vit"] and changed["tiny-vit"][0] == spec.sha256 != changed["tiny-vit"][1]
