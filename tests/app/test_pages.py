"""The pages through Streamlit's AppTest: they render, share links reproduce, bad links are survivable."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.apptest import change_settings, numbers, open_page, settings_summary

from app import navigation
from app.runtime import compute
from app.runtime import share as share_module
from model_zoo import get_spec
from app.ui.session import WidgetKeys

FAST_IG = {"model": "vit-dot", "method": "integrated_gradients", "sample": "17", "n_steps": "16"}


def share(at: AppTest) -> str:
    """Click Share and return the new link id."""
    next(b for b in at.button if b.label == "Share").click().run()
    assert not at.exception, at.exception
    link = at.query_params.get("id")
    assert isinstance(link, str) and len(link) == 22, at.query_params
    assert any(f"?id={link}" in m.value.replace("\\", "") for m in at.markdown)
    return link


def refuse_to_compute(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a shared analysis must be shown from the store, not recomputed")
    monkeypatch.setattr(compute, "run", boom)


MAIN_WIDGETS = {
    "home": lambda at: len(at.get("page_link")) >= 6,
    "models": lambda at: at.selectbox(key=WidgetKeys("models").name("model")).value == "vit-dot"
                         and len(at.dataframe) == 1,
    "attribution": lambda at: {s.label for s in at.selectbox} >= {"Model", "Method", "Digit class"}
                              and "Prediction" in numbers(at) and "Relative error" in numbers(at),
    "compare": lambda at: at.radio(key=WidgetKeys("compare").name("n")).value == 3
                          and sum(m.label == "Prediction" for m in at.metric) == 3,
}


@pytest.mark.parametrize("page", [p.name for p in navigation.available()])
def test_every_page_renders_with_its_main_widgets(page):
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, "every page has a title"
    check = MAIN_WIDGETS.get(page)
    if check is not None:  # the framework's own pages (others may say that a checkpoint is missing)
        assert not at.error, [e.value for e in at.error]
        assert check(at), page


def test_a_share_link_reproduces_identical_numbers_in_a_fresh_session(monkeypatch):
    first = open_page("attribution", FAST_IG)
    shown = numbers(first)
    assert shown["Prediction"] and shown["Σ attributions"] != "n/a"
    link = share(first)

    refuse_to_compute(monkeypatch)
    second = open_page("attribution", {"id": link})
    assert not second.exception and not second.error, [e.value for e in second.error]
    assert numbers(second) == shown
    assert any("numbers are the saved ones" in c.value for c in second.caption)
    assert second.query_params == {"id": link}
    summary = settings_summary(second)
    assert summary is not None and "**Path steps** 16" in summary, summary
    change_settings(second)
    assert second.number_input(key=WidgetKeys("attribution").name("integrated_gradients.n_steps")).value == 16
    assert numbers(second) == shown and second.query_params == {"id": link}

    saved = share_module.store().load(link)  # one record: input, params, results, provenance
    assert saved.meta["view"] == FAST_IG and saved.meta["checkpoints"]["vit-dot"] == get_spec("vit-dot").sha256
    assert {"torch", "captum", "transformers", "streamlit", "zooscope"} <= set(saved.meta["versions"])
    assert {"input/pixels", "attribution/attributions", "curves/deletion"} <= set(saved.arrays)


def test_a_link_opens_as_a_report_of_its_settings_until_the_person_asks_to_change_them(monkeypatch):
    query = {**FAST_IG, "method": "integrated_gradients", "baseline": "blur", "internal_batch_size": "8",
             "sample": "300"}
    first = open_page("attribution", query)
    assert settings_summary(first) is None, "a page opened from its settings shows its controls"
    link = share(first)
    assert settings_summary(first) is None, "sharing does not take the sharer's controls away"
    shown = numbers(first)

    refuse_to_compute(monkeypatch)
    second = open_page("attribution", {"id": link})
    summary = settings_summary(second)
    assert summary is not None
    lines = summary.split("  \n")[1:]
    # every setting with the link's value, those under "More parameters" included, and no controls
    assert {"**Model** vit-dot · attention", "**Method** Integrated Gradients", "**Path steps** 16",
            "**Baseline** blur", "**Inputs per pass (0: automatic)** 8", "**Input** Held-out digit", "**Digit class** 3",
            "**Example** #300"} <= set(lines), lines
    assert not second.selectbox and not second.number_input and not second.radio
    assert numbers(second) == shown

    change_settings(second)
    assert settings_summary(second) is None
    keys = WidgetKeys("attribution")
    assert second.selectbox(key=keys.name("model")).value == "vit-dot"
    assert second.selectbox(key=keys.name("integrated_gradients.baseline")).value == "blur"
    assert second.number_input(key=keys.name("integrated_gradients.internal_batch_size")).value == 8
    assert numbers(second) == shown and second.query_params == {"id": link}, "the saved numbers stay"

    monkeypatch.undo()  # a changed setting is a new analysis, computed now
    second.number_input(key=keys.name("integrated_gradients.n_steps")).set_value(8).run()
    assert not second.exception and "id" not in second.query_params and second.query_params["n_steps"] == "8"
    assert settings_summary(second) is None


def test_a_flagged_completeness_error_shows_the_warning_with_advice():
    at = open_page("attribution", {**FAST_IG, "n_steps": "2", "param.method": "riemann_left"})
    assert not at.exception
    warnings = [w.value.replace("\\", "") for w in at.warning]
    assert any("Completeness is off by" in w and "more than 5%" in w for w in warnings), warnings


def test_a_compare_link_reproduces_every_column(monkeypatch):
    query = {"sample": "300", "columns": "vit-dot:saliency,vit-dot:input_x_gradient"}
    first = open_page("compare", query)
    shown = numbers(first)
    link = share(first)
    refuse_to_compute(monkeypatch)
    second = open_page("compare", {"id": link})
    assert not second.exception and numbers(second) == shown
    lines = settings_summary(second).split("  \n")
    assert {"**Columns** 2", "**Model 1** vit-dot", "**Model 2** vit-dot", "**Example** #300"} <= set(lines), lines
    # the summary takes the narrow column; the link's provenance sits beside it, not below
    beside = second.columns[1]
    assert any("Shared analysis saved" in c.value for c in beside.caption), [c.value for c in beside.caption]
    change_settings(second)
    assert second.radio(key=WidgetKeys("compare").name("n")).value == 2 and numbers(second) == shown


def test_home_opens_a_shared_link_on_its_own_page():
    link = share(open_page("attribution", FAST_IG))
    at = open_page("home", {"id": link})
    assert not at.exception
    assert at.title[0].value == "Attribution"
    assert at.query_params == {"id": link}


def test_a_link_whose_model_changed_since_says_so(monkeypatch):
    link = share(open_page("attribution", FAST_IG))
    from model_zoo.spec import ModelSpec

    monkeypatch.setattr(ModelSpec, "sha256", property(lambda self: "f" * 64))
    at = open_page("attribution", {"id": link})
    assert not at.exception
    assert any("has changed since this analysis was saved" in w.value.replace("\\", "") for w in at.warning)


@pytest.mark.parametrize("query, expected", [
    ({"model": "nope", "n_steps": "-1", "sample": "5000", "foo": "<script>alert(1)</script>"}, "nope"),
    ({"id": "A" * 22}, "No analysis is saved under this link"),
    ({"id": "../../etc/passwd"}, "not a zooscope link id"),
    ({**FAST_IG, "n_steps": "1e9"}, "n_steps"),
])
def test_bad_links_show_an_error_above_a_usable_page(query, expected):
    at = open_page("attribution", query)
    assert not at.exception
    assert at.error and expected in at.error[0].value.replace("\\", "")
    assert at.selectbox(key=WidgetKeys("attribution").name("model")).value == "vit-dot"
    assert "Prediction" in numbers(at)


def test_changing_a_widget_rewrites_the_url_and_drops_the_link():
    at = open_page("attribution", FAST_IG)
    share(at)
    at.number_input(key=WidgetKeys("attribution").name("integrated_gradients.n_steps")).set_value(8).run()
    assert not at.exception
    assert at.query_params == {**FAST_IG, "n_steps": "8"}


def test_a_settings_summary_reads_each_widget_kind_as_the_widget_would_show_it():
    def script():
        import streamlit as st

        from app.ui.settings import SettingsSummary

        st.session_state.update({"n": 16, "f": 0.25, "c": False, "s": "b", "t": "two\nlines", "x": 7})
        ui = SettingsSummary()
        got = [ui.number_input("n_steps", min_value=1, key="n"), ui.number_input("sigma", format="%g", key="f"),
               ui.checkbox("smooth", key="c"), ui.selectbox("pick", ["a", "b"], format_func=str.upper, key="s"),
               ui.text_area("Sentence", key="t"), ui.select_slider("Example", [5, 7], format_func=lambda i: f"#{i}",
                                                                   key="x"),
               ui.radio("unkeyed", ["first", "second"], index=1), ui.file_uploader("Image", key="u")]
        with ui.expander("More"):
            ui.text("upload.png")
        ui.image(b"png bytes", caption="the input")
        st.json({"got": got, "markdown": ui.markdown(), "images": len(ui.images),
                 "missing": not hasattr(ui, "slider")})

    at = AppTest.from_function(script).run()
    assert not at.exception, at.exception
    shown = json.loads(at.json[0].value)
    assert shown["got"] == [16, 0.25, False, "b", "two\nlines", 7, "second", None]
    lines = shown["markdown"].replace("\\", "").split("  \n")
    assert lines == ["**n_steps** 16", "**sigma** 0.25", "**smooth** no", "**pick** B", "**Sentence** two lines",
                     "**Example** #7", "**unkeyed** second", "upload.png"]
    assert shown["images"] == 1 and shown["missing"], "a widget it does not know is an error, not skipped"
