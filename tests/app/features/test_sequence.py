"""The Sequence page: its link state, a word decoded with alignment, steps, attribution and entropy, Compare."""

from __future__ import annotations

import numpy as np

from analyzers.sequence import SequenceAttributionParams
from app.features.sequence import DEFAULT_WORD, SequenceView, check_word, completeness_table, table
from app.links.codec import canonical
from tests.app.apptest import errors, open_page


def test_the_view_round_trips_through_its_link():
    view = SequenceView("g2p-soft", "phoenix", canonical(SequenceAttributionParams(attribution="occlusion",
                                                                                   n_steps=32)), True)
    query = view.to_query()
    assert query == {"model": "g2p-soft", "word": "phoenix", "attribution": "occlusion", "n_steps": "32",
                     "compare": "1"}
    back, problems = SequenceView.from_query(query)
    assert back == view and problems == ()
    assert SequenceView().to_query() == {"model": "g2p-monotonic", "word": DEFAULT_WORD}


def test_a_bad_link_says_what_was_wrong_and_shows_what_it_can():
    view, problems = SequenceView.from_query({"model": "gpt-9", "word": "h3llo", "n_steps": "0", "extra": "1"})
    assert view.model == "g2p-monotonic" and view.word == DEFAULT_WORD
    text = " ".join(problems)
    assert "gpt-9" in text and "'3'" in text and "n_steps" in text and "extra" in text


def test_words_are_checked_like_the_models_read_them():
    assert check_word("  Phoenix ") == "phoenix"
    for bad in ("", "h3llo", "a b", "x" * 41):
        try:
            check_word(bad)
        except ValueError as e:
            assert "letters" in str(e) or "word" in str(e)
        else:
            raise AssertionError(bad)


def test_the_page_decodes_a_word_and_compares_the_models():
    at = open_page("sequence", {"model": "g2p-monotonic", "word": "knight", "attribution": "integrated_gradients",
                                "n_steps": "16", "compare": "1"})
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at)
    said = [m.value for m in at.markdown if "says `/" in m.value]
    assert len(said) == 1 and "knight" in said[0]
    compared = [m.value for m in at.markdown if m.value.startswith("**g2p-")]
    assert {v.split("**")[1] for v in compared} == {"g2p-soft", "g2p-monotonic"}
    completeness = at.dataframe[0].value
    assert list(completeness.columns)[:3] == ["step", "token", "log p at the word"]
    assert (completeness["relative error"] < 0.05).all()
    assert at.slider[0].label == "Decoding step" if len(at.slider) else True
    assert at.text_input[0].value == "knight"


def test_a_bad_word_typed_is_one_message_and_no_analysis():
    at = open_page("sequence", {"word": "knight", "attribution": "occlusion"})
    at.text_input[0].set_value("k9ight").run()
    assert not at.exception
    assert any("cannot read" in e for e in errors(at))
    assert not [m for m in at.markdown if "says `/" in m.value]


def test_tables_for_the_downloads():
    from analyzers import run_analyzer
    from model_zoo import get_spec
    from tests.analyzers.test_sequence import model_for

    spec, model = get_spec("g2p-monotonic"), model_for("g2p-monotonic")
    a = run_analyzer("sequence_alignment", model, spec, ["cat"])
    b = run_analyzer("sequence_attribution", model, spec, ["cat"], SequenceAttributionParams(n_steps=8))
    rows = table({"g2p-monotonic.alignment": a, "g2p-monotonic.attribution": b})
    assert list(rows["token"]) == list(a.outputs) and np.allclose(rows["rel_error"], b.rel_error)
    assert len(completeness_table(b)) == len(b.outputs)
