"""The Routing page: its link state, its charts, the page in AppTest, share links, exports and Compare."""

from __future__ import annotations

import altair as alt
import numpy as np
import pytest

from app.charts.routing import ablation_chart, class_load_chart, load_bars_chart, routing_frame, routing_map_chart
from app.features.routing import RoutingView
from app.links import catalogue
from app.links.codec import InputRef
from app.runtime import compute
from app.ui.session import WidgetKeys
from tests.app.apptest import change_settings, errors, numbers, open_page, settings_summary


def q(**kw: str) -> dict[str, list[str]]:
    return {k.replace("__", "."): [v] for k, v in kw.items()}


def require_moe() -> None:
    if not catalogue.has_weights("vit-moe"):
        pytest.skip("no checkpoint for vit-moe yet: run `zooscope train vit-moe`")


@pytest.mark.parametrize("view", [
    RoutingView(),
    RoutingView("vit-moe", InputRef(17), 2, 5, 25, 3, (("n_steps", "128"), ("method", "riemann_trapezoid"),
                                                       ("baseline", "blur"))),
    RoutingView("vit-moe", InputRef(3), -1, -1, 0, 7),
])
def test_views_round_trip_through_the_url(view):
    back, problems = RoutingView.from_query({k: [v] for k, v in view.to_query().items()})
    assert problems == () and back == view


def test_defaults_write_a_short_url_and_bad_values_get_one_message_each():
    assert RoutingView(input=InputRef(17)).to_query() == {"model": "vit-moe", "sample": "17"}
    view, problems = RoutingView.from_query(q(model="gpt-9", token="50", expert="x", ig__n_steps="0", foo="1"))
    assert view == RoutingView()
    assert len(problems) == 5
    assert any("Unknown MoE model 'gpt-9'" in p for p in problems) and any("50 is out of range" in p for p in problems)
    assert catalogue.routing_models() == ("vit-moe",)
    assert "vit-moe" not in catalogue.synthesizer_models() and "vit-moe" in catalogue.attribution_models()


def test_charts_are_valid_vega_lite():
    experts = np.tile(np.array([[3, 1]]), (50, 1))
    weights = np.tile(np.array([[0.7, 0.3]]), (50, 1))
    df = routing_frame(experts, weights)
    assert len(df) == 49 and df["experts"][0] == "3 (0.70), 1 (0.30)" and df["row"].max() == 6
    for chart in (routing_map_chart(np.zeros((28, 28)), experts, weights, 8, "b"),
                  load_bars_chart(np.arange(8.0)), class_load_chart(np.full((10, 8), 1 / 8), tuple("0123456789")),
                  ablation_chart(tuple("0123456789"), np.ones(10), np.full(10, 0.5), 2)):
        alt.Chart.from_dict(chart.to_dict()) if isinstance(chart, alt.Chart) else chart.to_dict(validate=True)


def test_the_page_draws_every_panel():
    require_moe()
    at = open_page("routing", {"sample": "17", "ablate": "2"})
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at)
    heads = [h.value for h in at.subheader]
    assert heads == ["Routing per layer", "Expert load over the held-out set", "What each expert responds to",
                     "Attribution through the router", "Ablate an expert"]
    shown = numbers(at)
    assert {"Held-out accuracy", "CV importance, block 3", "CV load, block 3", "Completeness error",
            "Routing switches on the path", "Without expert 2"} <= set(shown)
    assert float(shown["Held-out accuracy"].rstrip("%")) >= 93
    assert len(at.get("vega_lite_chart")) >= 7  # 2 maps + 2 load bars + class load + gate IG + ablation
    assert any(b.label == "Share" for b in at.button)


def test_a_bad_link_block_is_reported_above_a_working_page():
    require_moe()
    at = open_page("routing", {"sample": "5", "block": "1", "expert": "40"})
    assert not at.exception
    problems = " ".join(errors(at))
    assert "no MoE layer in block 1" in problems and "experts 0 to 7, not 40" in problems
    assert at.selectbox(key=WidgetKeys("routing").name("block")).value == 3  # the last MoE layer instead
    assert at.selectbox(key=WidgetKeys("routing").name("expert")).value == -1


def test_a_share_link_reopens_the_same_numbers_without_computing(monkeypatch):
    require_moe()
    first = open_page("routing", {"sample": "40", "block": "2", "ablate": "4"})
    assert not first.exception
    before = numbers(first)
    next(b for b in first.button if b.label == "Share").click().run()
    link = first.query_params.get("id")
    link = link[0] if isinstance(link, list) else link
    assert link, "sharing set no id in the URL"

    def boom(*args, **kwargs):
        raise AssertionError("a shared analysis must be shown from the store, not recomputed")
    monkeypatch.setattr(compute, "run", boom)
    again = open_page("routing", {"id": link})
    assert not again.exception, [e.value for e in again.exception]
    assert numbers(again) == before
    summary = settings_summary(again)
    assert summary is not None and "**MoE layer (block)** 2" in summary and "**Expert removed** expert 4" in summary
    change_settings(again)


def test_compare_offers_the_moe_models():
    require_moe()
    at = open_page("compare", {"sample": "3", "columns": "vit-moe:integrated_gradients,vit-dot:integrated_gradients"})
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at)
