"""The Models page lists the user's folders and plugin models beside the zoo, with a card each, and the refused ones."""

from __future__ import annotations

import pickle

import pytest

import model_zoo
from model_zoo import sources
from tests.app.apptest import numbers, open_page
from tests.hf_fixtures import (install_example_plugin, plugin_on_path, tiny_bert_classifier_folder,
                               tiny_resnet_folder, tiny_vit_folder)


@pytest.fixture()
def folders(tmp_path):
    sources.forget_all()
    vit, bert, resnet = tiny_vit_folder(tmp_path), tiny_bert_classifier_folder(tmp_path), tiny_resnet_folder(tmp_path)
    bad = tmp_path / "pickled"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "vit", "architectures": ["ViTForImageClassification"]}')
    (bad / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": 1}))
    assert model_zoo.register_folders([vit, bert, resnet, bad]) == ["tiny-vit", "tiny-bert-sentiment", "tiny-resnet"]
    yield {"vit": vit, "bert": bert, "bad": bad}
    sources.forget_all()


def _text(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.text]
    return "\n".join(parts + [c.value for c in at.code]).replace("\\", "")


def test_a_folder_card_shows_config_labels_parameters_sha256_readme_and_path(folders):
    at = open_page("models", {"model": "tiny-vit"})
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    spec = model_zoo.get_spec("tiny-vit")
    shown, text = numbers(at), _text(at)
    assert "image classification" in text and shown["Parameters"] == f"{spec.extra['parameters']:,}"
    assert shown["Classes"] == "3" and "cat, dog, bird" in text
    assert "ViTForImageClassification" in text and spec.sha256 in text and str(folders["vit"]) in text
    assert "A tiny ViT image classifier for tests" in text  # the README, rendered
    assert "image: RGB 32x32" in text and "preprocessor_config.json" in text
    table = at.dataframe[0].value
    assert {"tiny-vit", "tiny-bert-sentiment", "vit-dot"} <= set(table["model"])
    assert set(table.loc[table["model"] == "tiny-vit", "source"]) == {"your folder"}


def test_refused_folders_are_listed_with_their_reason_and_the_others_still_work(folders):
    at = open_page("models", {"model": "tiny-resnet"})
    assert not at.exception
    warnings = [w.value.replace("\\", "") for w in at.warning]
    assert any(str(folders["bad"]) in w and "pytorch_model.bin" in w and "pickle" in w for w in warnings), warnings
    text = _text(at)
    assert "No attention" in text and "tiny-resnet" in text


def test_the_plugin_model_has_its_card_on_the_models_page(tmp_path_factory):
    target = install_example_plugin(tmp_path_factory.mktemp("plugin") / "site")
    with plugin_on_path(target):
        at = open_page("models", {"model": "example-mlp"})
        assert not at.exception and not at.error, [e.value for e in at.error]
        text = _text(at)
        assert "From plugin example-mlp" in text
        table = at.dataframe[0].value
        assert set(table.loc[table["model"] == "example-mlp", "source"]) == {"plugin"}
        assert "Held-out accuracy" in numbers(at)  # measured here on the zoo's held-out digits
