"""Fair comparisons on the Compare page: the colour scale chosen by units, per-column params, agreement numbers."""

from __future__ import annotations

import numpy as np
import pytest

from analyzers import IGParams, OcclusionParams, SaliencyParams
from app.features.compare import Column, CompareView
from app.features.compare_fairness import agreement_table, rank_correlation, scale_choice, top_k, top_k_overlap
from app.links.codec import InputRef, canonical
from app.ui.session import WidgetKeys
from tests.app.apptest import numbers, open_page, settings_summary


def q(**kw: str) -> dict[str, list[str]]:
    """A query as Streamlit gives it (``col0__n_steps`` stands for ``col0.n_steps``)."""
    return {k.replace("__", "."): [v] for k, v in kw.items()}


def choice(*columns: tuple[str, str], setting: str = "auto", **params):
    return scale_choice([(m, method, params.get(f"col{i}") or Column(m, method).params_object())
                         for i, (m, method) in enumerate(columns)], setting)


# --------------------------------------------------------------------------- the scale rule


def test_the_same_method_on_two_classifiers_shares_one_scale():
    c = choice(("vit-dot", "integrated_gradients"), ("vit-random", "integrated_gradients"))
    assert c.shared and c.same_units
    sentence = c.sentence(["(1) a", "(2) b"], [2.0, 2.0])
    assert sentence.startswith("One colour scale for every column, ±2") and "same units" in sentence


def test_methods_that_add_up_to_the_output_change_share_a_scale():
    assert choice(("vit-dot", "integrated_gradients"), ("vit-dot", "gradient_shap")).shared


def test_ig_saliency_and_occlusion_are_each_normalised_and_the_page_says_why():
    c = choice(("vit-dot", "integrated_gradients"), ("vit-dot", "saliency"), ("vit-dot", "occlusion"))
    assert not c.shared and len(set(c.units)) == 3
    sentence = c.sentence(["(1) IG", "(2) Saliency", "(3) Occlusion"], [1.0, 0.5, 0.25])
    assert sentence.startswith("Each column on its own colour scale") and "units differ" in sentence
    assert "(2) Saliency: |∂F/∂pixel|" in sentence and "4×4 window" in sentence


@pytest.mark.parametrize("columns, params", [
    ((("vit-dot", "integrated_gradients"), ("capsnet", "integrated_gradients")), {}),  # a logit vs a capsule length
    ((("vit-dot", "occlusion"), ("vit-dot", "occlusion")), {"col1": OcclusionParams(window=8)}),
    ((("vit-dot", "saliency"), ("vit-dot", "saliency")), {"col1": SaliencyParams(abs=False)}),
])
def test_other_outputs_windows_or_signs_are_other_units(columns, params):
    assert not choice(*columns, **params).shared


def test_the_person_can_override_the_rule_and_the_sentence_says_so():
    forced = choice(("vit-dot", "integrated_gradients"), ("vit-dot", "saliency"), setting="shared")
    assert forced.shared and "although their units differ" in forced.sentence(["a", "b"], [1.0, 1.0])
    apart = choice(("vit-dot", "integrated_gradients"), ("vit-dot", "integrated_gradients"), setting="per_column")
    assert not apart.shared and "would also compare amounts" in apart.sentence(["a", "b"], [1.0, 2.0])


def test_a_shared_scale_is_the_largest_value_and_per_column_each_maps_own():
    maps = [np.array([[1.0, -4.0]]), np.array([[0.5, 0.25]])]
    assert choice(("vit-dot", "integrated_gradients"), ("vit-dot", "gradient_shap")).ranges(maps) == [4.0, 4.0]
    assert choice(("vit-dot", "integrated_gradients"), ("vit-dot", "saliency")).ranges(maps) == [4.0, 0.5]


# --------------------------------------------------------------------------- the link


def _two_columns(scale: str = "auto") -> CompareView:
    return CompareView((Column("vit-dot", "integrated_gradients", canonical(IGParams(n_steps=16, method="riemann_left"))),
                        Column("vit-random", "occlusion", canonical(OcclusionParams(window=8, target=3)))),
                       InputRef(7), scale)


def test_per_column_params_and_the_scale_go_into_the_link_and_back():
    view = _two_columns("shared")
    query = view.to_query()
    assert query == {"sample": "7", "columns": "vit-dot:integrated_gradients,vit-random:occlusion",
                     "col0.n_steps": "16", "col0.method": "riemann_left", "col1.window": "8", "col1.target": "3",
                     "scale": "shared"}
    back, problems = CompareView.from_query(q(**{k.replace(".", "__"): v for k, v in query.items()}))
    assert problems == () and back == view
    assert back.columns[0].params_object().n_steps == 16 and back.columns[1].params_object().window == 8


def test_the_automatic_scale_and_default_params_keep_the_link_as_it_was():
    old = {"sample": "42", "columns": "vit-dot:saliency,vit-random:integrated_gradients"}
    view, problems = CompareView.from_query(q(**old))
    assert problems == () and view.scale == "auto" and view.to_query() == old
    assert view.columns[1].params_object() == IGParams()


@pytest.mark.parametrize("key, value, words", [
    ("col0__n_steps", "0", ["Column 1 (vit-dot:integrated_gradients)", "n_steps"]),
    ("col1__target", "12", ["Column 2 (vit-random:occlusion)", "target 12 is out of range"]),
    ("col1__n_steps", "16", ["'col1.n_steps'"]),  # occlusion has no n_steps
    ("col5__window", "3", ["'col5.window'"]),
    ("scale", "loud", ["colour scale", "'loud'"]),
])
def test_bad_column_params_or_scale_give_a_message_and_the_defaults(key, value, words):
    view, problems = CompareView.from_query(q(columns="vit-dot:integrated_gradients,vit-random:occlusion",
                                              **{key: value}))
    assert len(problems) == 1 and all(w in problems[0] for w in words), problems
    assert view.columns[0].params_object() == IGParams() and view.columns[1].params_object() == OcclusionParams()
    assert view.scale == "auto"


# --------------------------------------------------------------------------- agreement


def test_identical_columns_agree_fully_whatever_the_sign():
    a = np.random.default_rng(0).normal(size=(28, 28))
    assert rank_correlation(a, a) == pytest.approx(1.0) and top_k_overlap(a, a, 39) == 1.0
    assert rank_correlation(a, -a) == pytest.approx(1.0) and top_k_overlap(a, -3 * a, 39) == 1.0


def test_a_known_case_one_swap_at_the_top_k_boundary():
    n, k = 784, top_k(784)
    a = np.arange(1.0, n + 1)  # ranks 1..784: the top 39 are 746..784
    b = a.copy()
    b[[744, 745]] = b[[745, 744]]  # 745 and 746 swap: one of a's top 39 leaves b's
    assert k == 39
    assert top_k_overlap(a, b, k) == pytest.approx(38 / 39)
    assert rank_correlation(a, b) == pytest.approx(1 - 6 * 2 / (n * (n**2 - 1)))
    assert rank_correlation(a, a[::-1]) == pytest.approx(-1.0) and top_k_overlap(a, a[::-1], k) == 0.0


def test_pixels_zero_in_both_maps_are_left_out_and_a_flat_map_has_no_correlation():
    a, b = np.zeros(784), np.zeros(784)
    a[:10], b[:10] = np.arange(10), np.arange(10) ** 2  # the same order where either is non-zero
    assert rank_correlation(a, b) == pytest.approx(1.0)
    assert np.isnan(rank_correlation(np.ones(784), b))


def test_the_agreement_table_has_one_row_per_pair():
    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(28, 28)) for _ in range(3)]
    table = agreement_table([maps[0], maps[0], maps[1]], ["1", "2", "3"])
    assert list(table.columns) == ["columns", "Spearman ρ", "top-39 overlap"]
    assert list(table["columns"]) == ["1 vs 2", "1 vs 3", "2 vs 3"]
    assert table.iloc[0, 1:].tolist() == pytest.approx([1.0, 1.0])


# --------------------------------------------------------------------------- the page

SAME_UNITS = {"sample": "3", "columns": "vit-dot:integrated_gradients,vit-random:integrated_gradients",
              "col0.n_steps": "16", "col1.n_steps": "8"}


def _captions(at) -> list[str]:
    return [c.value.replace("\\", "") for c in at.caption]


def test_the_page_says_which_scale_and_shows_the_agreement_table():
    at = open_page("compare", SAME_UNITS)
    assert not at.exception and not at.error, [e.value for e in at.exception or at.error]
    assert any(c.startswith("One colour scale for every column") and "same units" in c for c in _captions(at))
    keys = WidgetKeys("compare")
    assert at.number_input(key=keys.name("col0.integrated_gradients.n_steps")).value == 16
    assert at.number_input(key=keys.name("col1.integrated_gradients.n_steps")).value == 8
    table = at.table[0].value
    assert len(table) == 1 and "Spearman ρ" in table.columns and "top-39 overlap" in table.columns

    at.radio(key=keys.name("scale")).set_value("per_column").run()
    assert not at.exception and at.query_params["scale"] == "per_column" and at.query_params["col1.n_steps"] == "8"
    assert any(c.startswith("Each column on its own colour scale") for c in _captions(at))


def test_the_default_columns_are_each_normalised_and_a_shared_link_lists_every_columns_params(monkeypatch):
    from app.runtime import compute

    at = open_page("compare", {"sample": "5", "columns": "vit-dot:saliency,vit-dot:occlusion", "col1.window": "6"})
    assert any(c.startswith("Each column on its own colour scale") and "units differ" in c for c in _captions(at))
    shown = numbers(at)
    next(b for b in at.button if b.label == "Share").click().run()
    link = at.query_params["id"]

    monkeypatch.setattr(compute, "run", lambda *a, **k: pytest.fail("a shared analysis is not recomputed"))
    again = open_page("compare", {"id": link})
    assert not again.exception and numbers(again) == shown
    lines = settings_summary(again).split("  \n")
    assert {"**Method 2** Occlusion", "**Window (pixels)** 6", "**Colour scale** automatic (by units)"} <= set(lines), lines
    assert len(again.table) == 1
