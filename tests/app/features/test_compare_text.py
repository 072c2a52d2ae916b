"""Compare for text classifiers (issue 17): one sentence, the zoo's minilm-sentiment beside a user's BERT folder."""

from __future__ import annotations

import numpy as np
import pytest

import model_zoo
from app.features.compare import CompareView
from app.features.compare_text import agreement, modality_problem
from model_zoo import sources
from tests import hf_fixtures as fx
from tests.app.apptest import errors, open_page

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    sources.forget_all()
    names = model_zoo.register_folders([fx.tiny_bert_classifier_folder(tmp_path_factory.mktemp("cmp"))])
    assert names == ["tiny-bert-sentiment"]
    yield names[0]
    sources.forget_all()


COLUMNS = "minilm-sentiment:integrated_gradients,tiny-bert-sentiment:integrated_gradients"


def test_the_sentence_and_text_columns_go_into_the_link_and_back(bert):
    view, problems = CompareView.from_query({"text": ["A fine film."], "columns": [COLUMNS]})
    assert problems == () and view.text == "A fine film." and [c.model for c in view.columns] == [
        "minilm-sentiment", bert]
    assert view.to_query() == {"text": "A fine film.", "columns": COLUMNS}


def test_a_mixed_image_and_text_link_gives_one_clear_message(bert):
    view, problems = CompareView.from_query({"columns": ["vit-dot:integrated_gradients," + COLUMNS.split(",")[1]]})
    assert len(problems) == 1 and "does not mix image models and text classifiers" in problems[0]
    assert modality_problem(["vit-dot", bert]) and modality_problem([bert, "minilm-sentiment"]) is None
    assert view.columns[0].model == "vit-dot"  # the defaults


def test_agreement_over_words_only_for_the_same_words():
    same = (["a", "fine", "film"], np.array([0.1, 2.0, -0.5]))
    other = (["a", "fi", "ne", "film"], np.array([0.1, 1.0, 1.0, -0.5]))
    table, differ = agreement([same, same, other], ["(1)", "(2)", "(3)"])
    assert list(table["columns"]) == ["(1) vs (2)"] and table["Spearman ρ"][0] == pytest.approx(1.0)
    assert table.iloc[0, 2] == pytest.approx(1.0) and len(differ) == 2 and "different words" in differ[0]


def test_the_page_shows_both_text_columns_and_their_agreement(bert):
    at = open_page("compare", {"text": "A fine film.", "columns": COLUMNS})
    assert not at.exception and errors(at) == []
    assert [m.label for m in at.metric].count("Prediction") == 2
    shown = " ".join(str(m.value) for m in at.markdown) + " ".join(str(c.value) for c in at.caption)
    infos = " ".join(str(i.value) for i in at.info)
    assert "One colour scale for every column" in shown, shown
    assert len(at.table) == 1 or "not compared word by word" in infos


def test_a_mixed_link_on_the_page_gives_one_message_and_no_traceback(bert):
    at = open_page("compare", {"columns": "vit-dot:integrated_gradients,tiny-bert-sentiment:integrated_gradients"})
    assert not at.exception
    said = [str(w.value) for w in (*at.warning, *at.error, *at.info) if "does not mix" in str(w.value)]
    assert len(said) == 1, said


def test_a_text_comparison_is_shared_and_reopens_with_the_same_numbers_without_recomputing(bert, monkeypatch):
    from app.runtime import compute
    from tests.app.test_pages import share

    at = open_page("compare", {"text": "A fine film.", "columns": COLUMNS})
    before = [m.value for m in at.metric]
    link = share(at)

    def boom(*args, **kwargs):
        raise AssertionError("a shared comparison must be shown from the store, not recomputed")
    monkeypatch.setattr(compute, "run", boom)
    again = open_page("compare", {"id": link})
    assert not again.exception and errors(again) == []
    assert [m.value for m in again.metric] == before and len(before) == 2
