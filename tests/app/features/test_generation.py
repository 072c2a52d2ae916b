"""The Generation page: its link state, the background load of slow models, and the page on tiny GPT-2 and T5
folders (generation, attribution matrix with completeness, contrast, attention), bad input as one message."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import model_zoo
from analyzers.generation import GenerationIGParams
from app.charts import generation as charts
from app.features.generation import DEFAULT_TEXT, GenerationView
from app.links import catalogue
from app.links.codec import canonical
from app.runtime import background
from model_zoo import sources
from tests import hf_fixtures as fx
from tests.app.apptest import errors, open_page

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("generative")
    sources.forget_all()  # folders another module registered would take these names
    names = model_zoo.register_folders([fx.tiny_gpt2_folder(root), fx.tiny_t5_folder(root)])
    assert names == ["tiny-gpt2", "tiny-t5"]
    yield names
    sources.forget_all()


def test_the_view_round_trips_through_its_link(served):
    view = GenerationView("tiny-t5", "a fine film", canonical(GenerationIGParams(max_new_tokens=4, baseline="zero")),
                          step=2, foil="Ġbad", words=False)
    query = view.to_query()
    assert query == {"model": "tiny-t5", "text": "a fine film", "max_new_tokens": "4", "baseline": "zero",
                     "step": "2", "foil": "Ġbad", "words": "0"}
    back, problems = GenerationView.from_query(query)
    assert back == view and problems == ()


def test_a_bad_link_says_what_was_wrong_and_shows_what_it_can(served):
    view, problems = GenerationView.from_query({"model": "gpt-9", "max_new_tokens": "999", "step": "x",
                                                "foil": "\x00" * 3, "extra": "1"})
    assert view.model in catalogue.generation_models() and view.text == DEFAULT_TEXT and view.step == 1
    text = " ".join(problems)
    assert "gpt-9" in text and "max_new_tokens" in text and "step" in text and "foil" in text and "extra" in text


def test_the_catalogue_offers_generative_models_only_on_this_page(served):
    models = catalogue.generation_models()
    assert {"tiny-gpt2", "tiny-t5"} <= set(models)
    assert "g2p-soft" not in models and "minilm" not in models


def test_word_columns_keep_every_rows_total():
    source, prefix = ("the", "Ġfil", "m", "Ġwas"), ("Ġgre", "at")
    values = np.arange(12, dtype=float).reshape(2, 6)
    words = charts.matrix_frame(values, ("Ġgre", "at"), source, prefix, words=True)
    assert list(dict.fromkeys(words["input"])) == ["1 · the", "2 · film", "3 · was", "4 · great"]
    assert words.groupby("generated", sort=False)["attribution"].sum().tolist() == [15.0, 51.0]
    assert set(words["part"]) == {"source", "prefix"}
    assert charts.readable("Ġwas") == "was" and charts.readable("Ġ") == "␣"
    chart = charts.attribution_matrix_chart(values, ("Ġgre", "at"), source, prefix, "t", words=True)
    assert chart.to_dict()["layer"][1]["mark"]["type"] == "rule"  # the source | prefix edge


def test_a_slow_model_loads_in_the_background_and_reports(monkeypatch):
    from app.runtime import models

    calls = []

    def slow(name):
        calls.append(name)
        time.sleep(0.3)
        if name == "broken":
            raise model_zoo.CheckpointError("broken: the file is truncated; install it again")

    monkeypatch.setattr(models, "loaded_model", slow)
    for name in ("slow-one", "broken"):
        background.forget(name)
        state = background.start(name)
        assert background.start(name) is state and not state.done  # started once, returns at once
        deadline = time.monotonic() + 10
        while state.finished is None and time.monotonic() < deadline:
            time.sleep(0.05)
        background.forget(name)
    assert calls == ["slow-one", "broken"]
    assert state.failed and "truncated" in state.error


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_the_page_generates_and_explains(served, model):
    at = open_page("generation", {"model": model, "text": "the film was a delight", "max_new_tokens": "3",
                                  "n_steps": "128", "step": "2"})
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at)
    said = [m.value.replace("\\", "") for m in at.markdown if m.value.replace("\\", "").startswith(f"**{model}**")]
    assert len(said) == 1 and "the film was a delight" in said[0]
    tables = [d.value for d in at.dataframe if isinstance(d.value, pd.DataFrame)]
    completeness = next(t for t in tables if "relative error" in t.columns)
    assert len(completeness) == 3 and (completeness["relative error"] < 0.01).all()
    assert any(m.label.startswith("p(") for m in at.metric)  # the contrast ran
    labels = [s.label for s in at.selectbox]
    assert {"Attention", "Layer", "Head"} <= set(labels)


def test_bad_text_is_one_message_and_no_analysis(served):
    at = open_page("generation", {"model": "tiny-gpt2", "text": "a fine film", "max_new_tokens": "2", "n_steps": "8"})
    at.text_area[0].set_value("   ").run()
    assert not at.exception
    said = errors(at)
    assert len(said) == 1 and "Text" in said[0]
    assert not [m for m in at.markdown if "continues:" in m.value]
