"""Controls read like the science: readable names, the explained class first, no impossible choice, and a value
out of range is a visible error with no stale result."""

from __future__ import annotations

from analyzers import IGParams, field_specs
from app.ui.session import WidgetKeys
from app.ui.widgets import LABELS
from tests.app.apptest import numbers, open_page

FAST_IG = {"model": "vit-dot", "method": "integrated_gradients", "sample": "17", "n_steps": "16"}


def labels(at) -> list[str]:
    return [w.label for w in [*at.selectbox, *at.number_input, *at.checkbox]]


def test_the_attribution_controls_use_readable_names_and_start_with_the_explained_class():
    at = open_page("attribution", FAST_IG)
    shown = labels(at)
    assert "Path steps" in shown and "Quadrature rule" in shown and "n_steps" not in shown
    assert "method" not in shown, "no 'method' beside 'Method'"
    assert shown.index("Explained class") < shown.index("Path steps"), "what is explained comes first"
    steps = at.number_input(key=WidgetKeys("attribution").name("integrated_gradients.n_steps"))
    assert "`n_steps` in links" in steps.help, "the code's name stays findable"
    assert set(LABELS) >= {s.name for s in field_specs(IGParams)}


def test_no_choice_is_offered_that_cannot_be_made():
    at = open_page("attribution", FAST_IG)
    baseline = at.selectbox(key=WidgetKeys("attribution").name("integrated_gradients.baseline"))
    assert "custom" not in baseline.options and "custom" not in baseline.help


def test_an_out_of_range_value_is_a_visible_error_and_clears_the_result():
    at = open_page("attribution", FAST_IG)
    assert "Prediction" in numbers(at)
    at.number_input(key=WidgetKeys("attribution").name("integrated_gradients.n_steps")).set_value(100000).run()
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]
    assert any("n_steps" in e and "1024" in e for e in errors), errors
    assert "Prediction" not in numbers(at), "no stale result under the error"
    assert at.query_params["n_steps"] == "16", "the link keeps the last valid view"
    at.number_input(key=WidgetKeys("attribution").name("integrated_gradients.n_steps")).set_value(8).run()
    assert not at.error and "Prediction" in numbers(at)


def test_the_class_scores_mark_the_explained_class_beside_the_prediction():
    from app.charts.base import scores_chart

    import numpy as np

    spec = scores_chart([str(i) for i in range(10)], np.arange(10.0), predicted=9, value_name="score",
                        explained=3).to_dict()
    roles = {row["label"]: row["role"] for row in next(iter(spec["datasets"].values()))}
    assert roles["9"] == "predicted" and roles["3"] == "explained" and roles["0"] == ""
