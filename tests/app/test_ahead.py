"""Computing ahead: the results a person will likely ask for next, in the background, exactly as asked."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from analyzers import IGParams
from app import cache, compute, views
from app.compute import Ahead
from app.session import WidgetKeys
from tests.app.apptest import open_page

PIXELS = np.zeros((28, 28), dtype=np.float32)
PIXELS[6:22, 12:16] = 1.0  # a rough "1"


@pytest.fixture
def ahead_on(monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_AHEAD", "1")
    yield
    assert compute.AHEAD.wait_idle(), "a job computed ahead never finished"


def _chains(params: IGParams, targets) -> list[list[compute.Step]]:
    """IG for each target, then its deletion/insertion curves (what the Attribution page queues)."""
    return [[compute.Step("integrated_gradients", params.replace(target=k)),
             compute.Step("deletion_insertion", views.curve_params_for("integrated_gradients", params.replace(target=k)),
                          uses="attributions")] for k in targets]


def _blocked(ahead: Ahead, owner: str = "blocker") -> tuple[threading.Event, threading.Event]:
    """Occupy the worker until ``release`` is set; ``started`` tells when it runs."""
    started, release = threading.Event(), threading.Event()
    ahead.submit(owner, [(["block"], lambda: (started.set(), release.wait(10)))])
    assert started.wait(10)
    return started, release


def test_results_computed_ahead_are_the_ones_a_request_computes(ahead_on):
    params = IGParams(n_steps=12)
    cache.results()._items.clear()
    queued = compute.run_ahead("s", "vit-dot", PIXELS, _chains(params, (3, 5)))
    assert queued == 2
    assert compute.AHEAD.wait_idle()
    with compute.cache_only():  # both are there without anyone asking
        ahead = {k: compute.run("integrated_gradients", "vit-dot", params.replace(target=k), PIXELS) for k in (3, 5)}
    cache.results()._items.clear()
    for k, result in ahead.items():
        asked = compute.run("integrated_gradients", "vit-dot", params.replace(target=k), PIXELS)
        assert result.targets.tolist() == [k]
        np.testing.assert_array_equal(result.attributions, asked.attributions)
        np.testing.assert_array_equal(result.delta, asked.delta)
    # the curves were computed ahead too, under the key the page asks with
    cache.results()._items.clear()
    compute.run_ahead("s", "vit-dot", PIXELS, _chains(params, (3,)))
    assert compute.AHEAD.wait_idle()
    p3 = params.replace(target=3)
    with compute.cache_only():
        attribution = compute.run("integrated_gradients", "vit-dot", p3, PIXELS)
        curves = compute.run("deletion_insertion", "vit-dot", views.curve_params_for("integrated_gradients", p3),
                             PIXELS, depends_on=compute.key_of("integrated_gradients", "vit-dot", p3, PIXELS),
                             attributions=attribution)
    assert curves is not None


def test_cached_over_budget_and_turned_off_are_not_queued(ahead_on, monkeypatch):
    params = IGParams(n_steps=12, target=2)
    compute.run("integrated_gradients", "vit-dot", params, PIXELS)
    too_big = IGParams(n_steps=1024, baseline="uniform", baseline_draws=64)
    chains = [[compute.Step("integrated_gradients", p)] for p in (params, too_big)]
    assert compute.run_ahead("s", "vit-dot", PIXELS, chains) == 0
    monkeypatch.setenv("ZOOSCOPE_AHEAD", "0")
    assert compute.run_ahead("s", "vit-dot", PIXELS, _chains(params, (4,))) == 0


def test_a_queued_job_is_taken_over_by_whoever_asks_for_it():
    ahead = Ahead()
    ran = []
    _, release = _blocked(ahead)
    ahead.submit("s", [(["k1"], lambda: ran.append("k1")), (["k2"], lambda: ran.append("k2"))])
    ahead.claim("k1")  # still queued: taken out, the caller computes it
    release.set()
    assert ahead.wait_idle()
    assert ran == ["k2"]


def _counting(monkeypatch) -> list[tuple[str, int]]:
    """Record (analyzer, target) of every analysis that really runs."""
    ran: list[tuple[str, int]] = []
    guarded = compute._guarded

    def counted(analyzer, name, model, spec, inputs, params, *rest):
        ran.append((analyzer, getattr(params, "target", None)))
        return guarded(analyzer, name, model, spec, inputs, params, *rest)

    monkeypatch.setattr(compute, "_guarded", counted)
    return ran


def test_a_result_being_computed_ahead_is_computed_once_whoever_gets_there_first(ahead_on, monkeypatch):
    ran = _counting(monkeypatch)
    params = IGParams(n_steps=12, target=6)
    cache.results()._items.clear()
    compute.run_ahead("s", "vit-dot", PIXELS, _chains(params, (6,)))
    compute.run("integrated_gradients", "vit-dot", params, PIXELS)
    assert compute.AHEAD.wait_idle()
    assert ran.count(("integrated_gradients", 6)) == 1
    assert ran.count(("deletion_insertion", 6)) == 1


def test_a_page_asking_for_a_result_whose_job_waits_for_it_does_not_deadlock(ahead_on, monkeypatch):
    ran = _counting(monkeypatch)
    params = IGParams(n_steps=12, target=8)
    cache.results()._items.clear()
    with compute.AHEAD.foreground():  # a page is running: the job may start but waits before its first step
        compute.run_ahead("s", "vit-dot", PIXELS, _chains(params, (8,)))
        time.sleep(0.2)
        assert ran == []  # nothing computed ahead while the page runs
        compute.run("integrated_gradients", "vit-dot", params, PIXELS)
    assert compute.AHEAD.wait_idle(10)
    assert ran == [("integrated_gradients", 8), ("deletion_insertion", 8)]  # the page's, then the job's curves


def test_a_new_view_drops_its_session_s_queued_jobs_but_not_others():
    ahead = Ahead()
    ran = []
    _, release = _blocked(ahead)
    ahead.submit("a", [([k], lambda k=k: ran.append(k)) for k in ("a1", "a2")])
    ahead.submit("b", [(["b1"], lambda: ran.append("b1"))])
    ahead.submit("a", [(["a3"], lambda: ran.append("a3"))])
    release.set()
    assert ahead.wait_idle()
    assert sorted(ran) == ["a3", "b1"]


def test_a_failing_job_leaves_nothing_behind_and_the_request_reports_it():
    ahead = Ahead()
    ahead.submit("s", [(["bad"], lambda: 1 / 0)])
    assert ahead.wait_idle()
    assert ahead.pending() == 0


def test_the_attribution_page_computes_the_other_classes_while_the_person_looks(ahead_on, monkeypatch):
    cache.results()._items.clear()
    at = open_page("attribution", {"model": "vit-dot", "method": "integrated_gradients", "sample": "21",
                                   "n_steps": "16"})
    assert not at.exception and not at.error
    assert compute.AHEAD.wait_idle()
    params = IGParams(n_steps=16)
    pixels = cache.sample_pixels(21)
    with compute.cache_only():
        ahead = [compute.run("integrated_gradients", "vit-dot", params.replace(target=k), pixels) for k in range(10)]
    assert [r.targets.tolist() for r in ahead] == [[k] for k in range(10)]
    # choosing a class now shows its map and curves without computing anything
    ran = _counting(monkeypatch)
    target = at.selectbox(key=WidgetKeys("attribution").name("integrated_gradients.target"))
    at = target.set_value(3).run()
    assert not at.exception and not at.error
    assert ran == []
