"""Caching: our own result keys, one model per process, and sessions that cannot disturb each other."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from analyzers import IGParams, SaliencyParams
from app import warmup
from app.features.latent import heldout_uris
from app.runtime import compute, guards, models, results
from app.runtime.results import input_sha256, result_key
from model_zoo import get_spec

PIXELS = np.zeros((28, 28), dtype=np.float32)
PIXELS[6:22, 12:16] = 1.0  # a rough "1"


def test_result_keys_depend_on_input_model_analysis_and_canonical_params():
    base = dict(input_sha256=input_sha256(PIXELS), spec=get_spec("vit-dot"), analysis="integrated_gradients")
    key = result_key(**base, params={"n_steps": "64", "target": "-1"})
    assert key == result_key(**base, params={"target": "-1", "n_steps": "64"})
    assert key != result_key(**base, params={"n_steps": "32", "target": "-1"})
    assert key != result_key(**{**base, "spec": get_spec("vit-dense")}, params={"n_steps": "64", "target": "-1"})
    assert key != result_key(**{**base, "input_sha256": input_sha256(PIXELS + 0.5)},
                             params={"n_steps": "64", "target": "-1"})


def test_input_identity_is_the_bytes_not_the_object():
    assert input_sha256(PIXELS) == input_sha256(PIXELS.copy())
    assert input_sha256(PIXELS) != input_sha256(PIXELS.astype(np.float64))
    assert input_sha256(["a b", "c"]) != input_sha256(["a", "b c"])


def test_a_model_is_loaded_once_and_shared():
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(lambda _: models.loaded_model("vit-dot"), range(8)))
    assert all(entry is loaded[0] for entry in loaded)


def test_concurrent_sessions_get_the_numbers_a_sequential_run_gets():
    jobs = [("integrated_gradients", IGParams(n_steps=n, seed=n)) for n in (8, 12, 16, 20)]
    jobs += [("saliency", SaliencyParams(abs=flag)) for flag in (True, False)]
    results.results().clear()
    sequential = [compute.run(m, "vit-dot", p, PIXELS).attributions for m, p in jobs]
    results.results().clear()
    with ThreadPoolExecutor(len(jobs)) as pool:
        concurrent = list(pool.map(lambda job: compute.run(job[0], "vit-dot", job[1], PIXELS).attributions, jobs))
    for a, b in zip(sequential, concurrent):
        np.testing.assert_array_equal(a, b)


def test_a_cached_result_is_returned_without_running_again(monkeypatch):
    params = IGParams(n_steps=10)
    first = compute.run("integrated_gradients", "vit-dot", params, PIXELS)
    monkeypatch.setattr(compute, "using_model", lambda *a: pytest.fail("recomputed a cached result"))
    assert compute.run("integrated_gradients", "vit-dot", params, PIXELS) is first


def test_cache_only_returns_what_is_cached_and_computes_nothing(monkeypatch):
    params = IGParams(n_steps=11)
    first = compute.run("integrated_gradients", "vit-dot", params, PIXELS)
    monkeypatch.setattr(compute, "using_model", lambda *a: pytest.fail("computed inside cache_only"))
    with compute.cache_only():
        assert compute.run("integrated_gradients", "vit-dot", params, PIXELS) is first
        with pytest.raises(compute.NotCached):
            compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=12), PIXELS)
    monkeypatch.undo()
    assert compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=12), PIXELS) is not first


def test_failures_become_messages_for_people():
    with pytest.raises(guards.AnalysisError, match="unknown model"):
        compute.run("integrated_gradients", "resnet", IGParams(), PIXELS)
    with pytest.raises(guards.AnalysisError, match="target"):
        compute.run("integrated_gradients", "vit-dot", IGParams(target=500), PIXELS)


def test_the_warm_up_prepares_the_default_and_latent_pages_without_failing(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="app.warmup"):
        warmup._warm(("vit-dot",))
    assert not [r for r in caplog.records if "warm-up step" in r.getMessage()], caplog.text
    for step in ("imports", "load vit-dot", "IG vit-dot", "load vae-16d", "load vae-2d", "latent tooltips"):
        assert step in warmup.warm_seconds, step
    assert len(heldout_uris()) == len(models.heldout_split().y_heldout)


def test_freezing_the_long_lived_heap_collects_garbage_first():
    import gc
    import weakref

    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage  # only the cyclic collector can free this
    ref = weakref.ref(garbage)
    del garbage
    kept = models.loaded_model("vit-dot")
    models.freeze_long_lived()
    assert ref() is None, "garbage was frozen instead of collected"
    assert gc.get_freeze_count() > 0
    assert models.loaded_model("vit-dot") is kept


def test_follow_up_analyses_run_at_a_lower_cpu_priority_and_fail_as_messages(monkeypatch):
    import os
    import sys
    import threading

    import analyzers

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen: list[int] = []
    real = analyzers.run_analyzer

    def recording(*args, **kwargs):
        seen.append(nice())
        return real(*args, **kwargs)

    monkeypatch.setattr(analyzers, "run_analyzer", recording)
    mine = nice()
    compute.run("saliency", "vit-dot", SaliencyParams(), PIXELS * 0.41)
    compute.run("saliency", "vit-dot", SaliencyParams(), PIXELS * 0.42, follow_up=True)
    lowered = min(19, mine + compute.FOLLOW_UP_NICE) if sys.platform.startswith("linux") else mine
    assert seen == [mine, lowered]
    assert nice() == mine  # the caller's own priority is untouched

    def failing(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(analyzers, "run_analyzer", failing)
    with pytest.raises(guards.AnalysisError, match="failed"):
        compute.run("saliency", "vit-dot", SaliencyParams(), PIXELS * 0.43, follow_up=True)


def test_analyses_run_on_a_long_lived_thread_whichever_thread_asks(monkeypatch):
    import threading

    import analyzers

    ran_on: list[threading.Thread] = []
    real = analyzers.run_analyzer

    def recording(*args, **kwargs):
        ran_on.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(analyzers, "run_analyzer", recording)
    callers = []
    for shade in (0.31, 0.32, 0.33):  # three short-lived callers, like Streamlit's script threads
        caller = threading.Thread(target=lambda s=shade: compute.run("saliency", "vit-dot", SaliencyParams(),
                                                                     PIXELS * s))
        caller.start()
        caller.join()
        callers.append(caller)
    assert len(ran_on) == 3 and not set(ran_on) & set(callers)
    assert all(t.is_alive() and t.name.startswith("zooscope-compute") for t in ran_on), "long-lived, reused"
    assert len(set(ran_on)) <= compute.COMPUTE_THREADS
