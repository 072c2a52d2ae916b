"""The Share button through Streamlit's AppTest: a session sharing too fast is refused, its analysis kept."""

from __future__ import annotations

import re

from app.runtime import share
from app.ui.session import WidgetKeys
from tests.app.apptest import errors, numbers, open_page

FAST_IG = {"model": "vit-dot", "method": "integrated_gradients", "sample": "17", "n_steps": "16"}


def click_share(at):
    next(b for b in at.button if b.label == "Share").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_share_past_the_sessions_limit_is_refused_and_the_analysis_stays(monkeypatch):
    monkeypatch.setenv(share.SHARES_PER_HOUR_ENV, "1")
    at = open_page("attribution", FAST_IG)
    first = click_share(at).query_params.get("id")
    assert isinstance(first, str) and len(first) == 22

    n_steps = WidgetKeys("attribution").name("integrated_gradients.n_steps")
    at.number_input(key=n_steps).set_value(8).run()  # another view: its share would be a new one
    shown = numbers(at)
    click_share(at)
    refused = errors(at)
    told = re.compile(r"^Not saved: this session has shared 1 analysis in the last hour.* in (59|60) minutes\.$")
    assert any(told.match(e) for e in refused), refused
    assert "id" not in at.query_params and at.query_params["n_steps"] == "8"
    assert numbers(at) == shown and "Prediction" in shown, "the analysis stays on screen"
    assert len(share.store().recent(10)) == 1

    at.number_input(key=n_steps).set_value(16).run()  # back to the shared view: its link, not a new share
    click_share(at)
    assert not errors(at) and at.query_params.get("id") == first


def test_a_share_past_the_stores_budget_is_refused_and_the_analysis_stays(monkeypatch):
    monkeypatch.setenv(share.STORE_BUDGET_ENV, "0.001")  # 1 kB: no share fits
    at = open_page("attribution", FAST_IG)
    shown = numbers(at)
    click_share(at)
    refused = errors(at)
    assert any(e.startswith("Not saved: this server's store of shared analyses is full") for e in refused), refused
    assert "id" not in at.query_params and numbers(at) == shown and "Prediction" in shown
    assert share.store().recent(10) == []
