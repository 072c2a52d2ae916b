"""The Synthesizers page answers its whole question: each model's held-out accuracy beside its input-dependence,
and what dropping token-token interaction costs against dot-product attention, in numbers from the model cards."""

from __future__ import annotations

import pandas as pd
import pytest

from app.links import catalogue
from model_zoo import get_spec
from tests.app.apptest import open_page

ACCURACY = "held-out accuracy (%)"


def shipped(model: str) -> bool:
    return catalogue.has_weights(model) and "accuracy" in (get_spec(model).metrics or {})


def answer_text(at) -> str:
    found = [m.value.replace("\\", "") for m in at.markdown if "token-token interaction?" in m.value]
    assert len(found) == 1, [m.value for m in at.markdown]
    return found[0]


def test_the_models_table_shows_held_out_accuracy_beside_input_dependence():
    at = open_page("synthesizers", {"sample": "300", "layer": "1"})
    assert not at.exception, [e.value for e in at.exception]
    models = at.dataframe[0].value
    columns = list(models.columns)
    assert columns.index(ACCURACY) == columns.index("mean input-dependence") + 1
    for model, acc in zip(models["model"], models[ACCURACY]):
        assert acc == pytest.approx(100 * get_spec(model).metrics["accuracy"], abs=1e-9), model
    kinds = dict(zip(models["model"], models["token-token interaction"]))
    if "vit-dot" in kinds:
        assert kinds["vit-dot"].startswith("yes")
    assert all(kinds[m].startswith("no") for m in ("vit-dense", "vit-random", "vit-factorized") if m in kinds)


def test_the_page_says_what_dropping_token_token_interaction_costs():
    if not all(shipped(m) for m in ("vit-dot", "vit-random")):
        pytest.skip("needs vit-dot and vit-random")
    at = open_page("synthesizers", {"sample": "300"})
    assert not at.exception, [e.value for e in at.exception]
    text = answer_text(at)
    acc = {m: get_spec(m).metrics["accuracy"] for m in catalogue.synthesizer_models() if shipped(m)}
    assert f"(vit-dot, {100 * acc['vit-dot']:.1f}%)" in text
    for m, a in acc.items():
        if m != "vit-dot":
            assert f"{m} {100 * (a - acc['vit-dot']):+.1f} points" in text
    without = {m: a for m, a in acc.items() if m in ("vit-dense", "vit-random", "vit-factorized")}
    worst = min(without, key=without.get)
    if without[worst] < acc["vit-dot"]:
        assert f"costs at most {100 * (acc['vit-dot'] - without[worst]):.1f} points ({worst})" in text


@pytest.mark.parametrize("accuracies, expected", [
    ({"vit-dot": 95.0, "vit-dense": 90.0, "vit-random": 93.0, "vit-mixture": 96.0},
     ["vit-dense -5.0 points", "vit-mixture +1.0 points", "costs at most 5.0 points (vit-dense)"]),
    ({"vit-dot": 90.0, "vit-random": 92.0, "vit-factorized": 91.0},
     ["costs nothing here", "vit-random is 2.0 points more accurate without it"]),
])
def test_the_answer_is_computed_from_the_accuracies(accuracies, expected):
    from app.features.synthesizers import interaction_answer

    text = interaction_answer(pd.DataFrame({"model": list(accuracies), ACCURACY: list(accuracies.values())}))
    assert all(e in text for e in expected), text
    assert "1,000 held-out digits" in text


def test_no_answer_without_dot_product_attention_to_compare_with():
    from app.features.synthesizers import interaction_answer

    assert interaction_answer(pd.DataFrame({"model": ["vit-random"], ACCURACY: [90.0]})) == ""
    assert interaction_answer(pd.DataFrame({"model": ["vit-dot", "vit-random"], ACCURACY: [90.0, None]})) == ""


def test_nothing_uploaded_yet_shows_no_table_and_says_why():
    from app.ui.session import WidgetKeys

    at = open_page("synthesizers", {"sample": "300"})
    at.radio(key=WidgetKeys("synthesizers").name("source")).set_value("Upload").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.dataframe and any(i.value.startswith("Nothing uploaded yet") for i in at.info)
