"""The Models page measures a classifier on the held-out split: accuracy with its interval, per class, confusion."""

from __future__ import annotations

import numpy as np
import pytest

from app.runtime import evaluation
from model_zoo import get_spec
from tests.app.apptest import numbers, open_page


@pytest.mark.parametrize("name", ["vit-dot", "capsnet"])
def test_the_measured_accuracy_is_the_recorded_one(name):
    result = evaluation.evaluate(name)
    assert result.accuracy == pytest.approx(get_spec(name).metrics["accuracy"], abs=5e-4)
    counts = result.confusion()
    assert counts.sum() == len(result.truth) == 1000 and np.trace(counts) == round(result.accuracy * 1000)
    assert np.allclose(result.per_class(), np.diag(counts) / counts.sum(1))
    assert evaluation.evaluate(name) is result, "cached per checkpoint"


def test_the_interval_is_about_a_point_and_a_half_on_a_thousand_digits():
    truth = np.repeat(np.arange(10), 100)
    predicted = truth.copy()
    predicted[:100] = 1  # 900 of 1,000 right
    result = evaluation.HeldoutEvaluation("s", tuple(map(str, range(10))), truth, predicted)
    low, high = result.interval()
    assert result.accuracy == 0.9 and low < 0.9 < high
    assert 0.012 < (high - low) / 2 < 0.022  # Wilson, 95 %


def test_the_models_page_shows_the_held_out_evaluation():
    at = open_page("models", {"model": "capsnet"})
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = numbers(at)
    assert shown["Held-out accuracy"] == f"{get_spec('capsnet').metrics['accuracy']:.1%}"
    assert any("95 % interval" in c.value for c in at.caption)
    at = open_page("models", {"model": "vae-2d"})  # not a classifier: no such section
    assert not at.exception and "Held-out accuracy" not in numbers(at)
