"""One visitor's heavy analysis cannot stall the others: model copies, one heavy job per visitor, cancel, status."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import analyzers
from analyzers import IGParams, SaliencyParams
from app.runtime import compute, guards, jobs
from app.runtime.copies import COPIES_ENV, copies_of
from app.runtime.results import results

PIXELS = np.zeros((28, 28), dtype=np.float32)
PIXELS[6:22, 12:16] = 1.0  # a rough "1"
HEAVY = IGParams(n_steps=1024, seed=11)  # 1,024 model evaluations: heavy by default


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.delenv(guards.TIMEOUT_ENV, raising=False)
    monkeypatch.delenv(jobs.HEAVY_ENV, raising=False)
    results().clear()


class Blocker:
    """Stands in for ``analyzers.run_analyzer``: heavy requests run forward passes until released or cancelled."""

    def __init__(self):
        self.real = analyzers.run_analyzer
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, name, model, spec, x, params=None, **kwargs):
        if getattr(params, "n_steps", 0) == HEAVY.n_steps:
            self.started.set()
            while not self.release.is_set():
                model(x[:1])  # each pass meets the deadline and the cancel flag
        return self.real(name, model, spec, x, params, **kwargs)


def in_thread(work, owner: str = "") -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run():
        with jobs.acting_for(owner):
            try:
                out["value"] = work()
            except Exception as e:  # noqa: BLE001 - the test reads what happened
                out["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def heavy_run(model: str = "vit-dot"):
    return compute.run("integrated_gradients", model, HEAVY, PIXELS)


def test_what_is_heavy_follows_the_cost_of_the_params(monkeypatch):
    assert jobs.Job(1, "a", "x", 1024, "k").heavy and not jobs.Job(2, "a", "x", 64, "k").heavy
    monkeypatch.setenv(jobs.HEAVY_ENV, "100")
    assert jobs.Job(3, "a", "x", 128, "k").heavy


def test_another_visitors_analysis_runs_beside_a_heavy_one_on_the_same_model(monkeypatch):
    blocker = Blocker()
    monkeypatch.setattr(analyzers, "run_analyzer", blocker)
    heavy, heavy_out = in_thread(heavy_run, owner="attacker")
    try:
        assert blocker.started.wait(30)
        victim, victim_out = in_thread(lambda: compute.run("saliency", "vit-dot", SaliencyParams(), PIXELS), "victim")
        victim.join(30)
        assert not victim.is_alive(), "the victim waited for the heavy analysis"
        assert victim_out["value"].attributions.shape == (1, 1, 28, 28)
        assert copies_of("vit-dot").busy() == 1  # the heavy one still holds its copy; the victim used another
    finally:
        blocker.release.set()
        heavy.join(60)
    assert heavy_out["value"].attributions.shape == (1, 1, 28, 28)


def test_one_visitor_holds_at_most_one_heavy_analysis(monkeypatch):
    blocker = Blocker()
    monkeypatch.setattr(analyzers, "run_analyzer", blocker)
    first, first_out = in_thread(heavy_run, owner="tabs")
    try:
        assert blocker.started.wait(30)
        with jobs.acting_for("tabs"), pytest.raises(guards.AnalysisBusy, match="already have a heavy analysis"):
            compute.run("integrated_gradients", "capsnet", IGParams(n_steps=512, baseline="uniform", baseline_draws=4), PIXELS)
        with jobs.acting_for("someone else"):  # another visitor may queue theirs
            assert not [j for j in jobs.running() if j.owner == "someone else"]
    finally:
        blocker.release.set()
        first.join(60)
    assert "value" in first_out


def test_a_visitor_can_cancel_their_analysis_and_it_is_not_started_again(monkeypatch):
    blocker = Blocker()
    monkeypatch.setattr(analyzers, "run_analyzer", blocker)
    heavy, out = in_thread(heavy_run, owner="me")
    assert blocker.started.wait(30)
    with jobs.acting_for("me"):
        (job,) = jobs.mine()
    job.cancel()
    heavy.join(30)
    assert not heavy.is_alive() and isinstance(out["error"], guards.AnalysisCancelled)
    assert copies_of("vit-dot").busy() == 0, "the cancelled analysis gave its copy back"
    with jobs.declining(frozenset({job.key})), pytest.raises(guards.AnalysisCancelled, match="Run it again"):
        heavy_run()
    blocker.release.set()


def test_a_waiting_page_hears_what_it_waits_for(monkeypatch):
    monkeypatch.setenv(COPIES_ENV, "1")  # one instance (a model no other test copies): the second must wait
    blocker = Blocker()
    monkeypatch.setattr(analyzers, "run_analyzer", blocker)
    heavy, _ = in_thread(lambda: heavy_run("vit-dense"), owner="attacker")
    heard: list[str] = []
    try:
        assert blocker.started.wait(30)

        def victim():
            with jobs.watching(lambda job: heard.append(job.status())):
                return compute.run("saliency", "vit-dense", SaliencyParams(abs=False), PIXELS)

        waiting, out = in_thread(victim, owner="victim")
        waiting.join(1.0)
        assert waiting.is_alive() and heard, "the victim waits, and its page hears why"
        assert "waiting for a free copy of vit-dense" in heard[-1], heard[-1]
    finally:
        blocker.release.set()
        heavy.join(60)
    waiting.join(30)
    assert out["value"].attributions.shape == (1, 1, 28, 28)
