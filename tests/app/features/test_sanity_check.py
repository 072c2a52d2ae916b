"""The model-randomisation sanity check, one click from the Attribution page: maps, correlation, verdict, progress."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from analyzers import IGParams
from app.features.attribution import AttributionView, sanity_params, sanity_verdict
from app.runtime import compute, jobs
from tests.app.apptest import open_page
from tests.app.test_pages import refuse_to_compute, share

QUERY = {"model": "vit-dot", "method": "integrated_gradients", "sample": "17", "n_steps": "16", "check": "1"}


def verdict_text(at) -> str:
    return " ".join(b.value.replace("\\", "") for b in [*at.info, *at.warning])


def test_the_check_is_part_of_the_link():
    view, problems = AttributionView.from_query({k: [v] for k, v in QUERY.items()})
    assert problems == () and view.check and view.to_query()["check"] == "1"
    assert "check" not in AttributionView().to_query()
    view, problems = AttributionView.from_query({"check": ["yes"]})
    assert not view.check and "check" in problems[0]


@pytest.mark.parametrize("final, kind", [(0.05, "pass"), (0.45, "unclear"), (0.9, "fail")])
def test_the_verdict_follows_the_correlation_after_every_layer(final, kind):
    result = SimpleNamespace(spearman=np.array([[0.9], [final]]), attribution_method="saliency")
    said, words = sanity_verdict(result)
    assert said == kind and f"{final:.2f}" in words and "Saliency" in words


def test_the_check_runs_the_same_method_and_target_with_at_most_32_steps():
    params = sanity_params("integrated_gradients", IGParams(n_steps=256, target=3))
    assert (params.attribution, params.n_steps, params.target) == ("integrated_gradients", 32, 3)


def test_the_page_shows_the_maps_the_correlation_and_the_verdict_and_shares_them(monkeypatch):
    at = open_page("attribution", QUERY)
    assert not at.exception and not at.error, [e.value for e in at.error]
    said = verdict_text(at)
    assert "with every layer re-initialised" in said and "rank correlation" in said, said
    assert at.checkbox[0].value is True
    link = share(at)
    refuse_to_compute(monkeypatch)  # the shared link shows the saved check
    again = open_page("attribution", {"id": link})
    assert not again.exception and not again.error
    assert verdict_text(again) == said


def test_the_check_reports_its_progress_layer_by_layer(monkeypatch):
    reported: list[tuple[int, int, str]] = []
    real = jobs.advance
    monkeypatch.setattr(jobs, "advance", lambda done, total, unit="steps": (reported.append((done, total, unit)),
                                                                             real(done, total, unit)))
    result = compute.run("randomisation_check", "capsnet", sanity_params("integrated_gradients", IGParams()),
                         np.zeros((28, 28), dtype=np.float32) + 0.5, follow_up=True, progress_in="layers")
    n = len(result.layers)
    assert n >= 3 and reported == [(i, n, "layers") for i in range(1, n + 1)]
