"""Link state of the Attribution and Compare pages: URL parameters to typed views and back, validated."""

from __future__ import annotations

import pytest

from app.features.attribution import DEFAULT_METHOD, DEFAULT_MODEL, AttributionView
from app.features.compare import DEFAULT_COLUMNS, Column, CompareView
from app.features.home import LinkView
from app.features.models import ModelsView
from app.links.catalogue import attribution_models, default_params
from app.links.codec import DEFAULT_SAMPLE, InputRef, canonical


def q(**kw: str | list[str]) -> dict[str, list[str]]:
    """A query as Streamlit gives it: every key with a list of values."""
    return {k.replace("__", "."): v if isinstance(v, list) else [v] for k, v in kw.items()}


def test_the_documented_example_url_parses_cleanly():
    view, problems = AttributionView.from_query(
        q(model="vit-dot", method="integrated_gradients", sample="17", n_steps="64"))
    assert problems == ()
    assert (view.model, view.method, view.input, view.link) == ("vit-dot", "integrated_gradients", InputRef(17), None)
    assert view.params_object().n_steps == 64


@pytest.mark.parametrize("view", [
    AttributionView(),
    AttributionView("vit-dot", "saliency", default_params("saliency"), InputRef(999)),
    AttributionView(params=(("n_steps", "16"), *default_params("integrated_gradients")[1:]), input=InputRef(3)),
    CompareView(),
    CompareView((Column("vit-dot", "occlusion"), Column("capsnet", "integrated_gradients")), InputRef(42)),
    ModelsView("capsnet"),
])
def test_views_round_trip_through_the_url(view):
    back, problems = type(view).from_query(q(**view.to_query()))
    assert problems == ()
    assert back == view


def test_changed_params_only_are_written_and_reserved_names_are_prefixed():
    params = AttributionView().params_object().replace(n_steps=16, method="riemann_left")
    view = AttributionView(params=canonical(params), input=InputRef(5))
    query = view.to_query()
    assert query == {"model": "vit-dot", "method": "integrated_gradients", "sample": "5", "n_steps": "16",
                     "param.method": "riemann_left"}
    assert AttributionView.from_query(q(**{k.replace(".", "__"): v for k, v in query.items()}))[0] == view


@pytest.mark.parametrize("bad", ["-1", "0", "1e9", "nan", "5.5", "abc", ""])
def test_bad_n_steps_gives_a_message_and_keeps_the_default(bad):
    view, problems = AttributionView.from_query(q(model="vit-dot", method="integrated_gradients", n_steps=bad))
    assert len(problems) == 1 and "n_steps" in problems[0]
    assert view.params_object().n_steps == 64


def test_unknown_model_method_and_keys_each_get_a_message():
    view, problems = AttributionView.from_query(q(model="resnet-9000", method="magic", sample="3", foo="1"))
    assert view.model == DEFAULT_MODEL and view.method == DEFAULT_METHOD
    assert view.input.sample == 3
    text = " ".join(problems)
    assert "resnet-9000" in text and "magic" in text and "'foo'" in text


def test_an_analyzer_that_is_not_an_attribution_method_is_refused():
    view, problems = AttributionView.from_query(q(model="vit-dot", method="attention_maps"))
    assert view.method == DEFAULT_METHOD and "attention_maps" in problems[0]


def test_text_models_are_not_offered_for_pixel_attribution():
    assert "minilm" not in attribution_models()
    assert "vit-dot" in attribution_models()


@pytest.mark.parametrize("sample", ["-1", "1000", "17.5", "1" * 40, "0x10"])
def test_sample_out_of_range_or_not_a_number(sample):
    view, problems = AttributionView.from_query(q(sample=sample))
    assert view.input.sample == DEFAULT_SAMPLE and len(problems) == 1


def test_repeated_keys_are_reported_not_guessed():
    view, problems = AttributionView.from_query(q(model=["vit-dot", "capsnet"], n_steps=["8", "16"]))
    assert view.model == DEFAULT_MODEL and view.params_object().n_steps == 64
    assert sum("appears 2 times" in p for p in problems) == 2


def test_overlong_values_are_cut_short_in_messages():
    _, problems = AttributionView.from_query(q(model="x" * 10_000))
    assert len(problems[0]) < 300


@pytest.mark.parametrize("link", ["short", "A" * 23, "../../etc/passwd0000000", "'; DROP TABLE x;--aaaaa", "A" * 21 + "!"])
def test_malformed_ids_are_rejected_before_any_lookup(link):
    view, problems = AttributionView.from_query(q(id=link))
    assert view.link is None and "not a zooscope link id" in problems[0]


def test_a_well_formed_id_is_the_whole_view():
    view, problems = AttributionView.from_query(q(id="A" * 22, model="capsnet"))
    assert view.link == "A" * 22 and problems == ()
    assert view.to_query() == {"id": "A" * 22}
    assert LinkView.from_query(q(id="B" * 22))[0].link == "B" * 22


def test_uploads_are_only_accepted_when_the_session_has_them():
    sha = "ab" * 32
    view, problems = AttributionView.from_query(q(upload=sha), uploads={sha})
    assert view.input == InputRef(0, sha) and problems == ()
    view, problems = AttributionView.from_query(q(upload=sha))
    assert view.input.upload is None and "uploaded image" in problems[0]


@pytest.mark.parametrize("columns", ["vit-dot:saliency", "a:b,c:d", "vit-dot:saliency," * 5, "vit-dot:nope,vit-dot:saliency"])
def test_bad_compare_columns_fall_back_to_the_defaults(columns):
    view, problems = CompareView.from_query(q(columns=columns))
    assert view.columns == DEFAULT_COLUMNS and len(problems) == 1
