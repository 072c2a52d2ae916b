"""Sharpen progressively on the Attribution page: final readout, the switch, Stop keeping the map, no thread left."""

from __future__ import annotations

import threading

import numpy as np

from analyzers import IGParams, SmoothGradParams
from analyzers.refine import DEFAULT_RULE
from app.features import attribution_refine as refine
from app.runtime import compute
from model_zoo import load_split
from tests.app.apptest import numbers, open_page

QUERY = {"model": "vit-dot", "method": "integrated_gradients", "sample": "17"}


def captions(at) -> str:
    return " ".join(c.value.replace("\\", "") for c in at.caption)


def test_the_page_sharpens_until_completeness_passes_and_says_how():
    at = open_page("attribution", QUERY)
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    said = captions(at)
    assert "Sharpened progressively — final: " in said and f"path points ({DEFAULT_RULE})" in said, said
    assert float(numbers(at)["Relative error"].rstrip("%")) <= 5.0
    assert next(t for t in at.toggle if t.label == refine.TOGGLE_LABEL).value is True
    assert not at.button or all(b.label != "Stop sharpening" for b in at.button)  # gone once final


def test_switched_off_the_page_runs_the_steps_as_set():
    at = open_page("attribution", {**QUERY, "n_steps": "16"})
    next(t for t in at.toggle if t.label == refine.TOGGLE_LABEL).set_value(False).run()
    assert not at.exception and not at.error
    assert "Sharpened progressively" not in captions(at) and "Relative error" in numbers(at)


def test_other_methods_and_text_models_are_not_offered():
    assert refine.offered("vit-dot", "smoothgrad") and refine.offered("capsnet", "gradient_shap")
    assert not refine.offered("vit-dot", "occlusion") and not refine.offered("minilm", "integrated_gradients")


def _fill(kind: str) -> None:
    """Start every worker of compute pool ``kind`` (long-lived threads), so a later count compares like with like."""
    pool = compute._pool(kind)
    gate = threading.Barrier(pool._max_workers + 1)
    futures = [pool.submit(gate.wait) for _ in range(pool._max_workers)]
    gate.wait(timeout=30)
    for f in futures:
        f.result(timeout=30)


def test_stop_keeps_the_current_map_marked_provisional_and_leaves_no_thread_behind():
    _fill("first")
    _fill("heavy")
    before = set(threading.enumerate())
    pixels = load_split().x_heldout[3].astype(np.float32) / 255.0
    params = SmoothGradParams(base="integrated_gradients", n_steps=64, seed=3)  # 4 -> 256 samples x 64 steps
    live = refine.start("vit-dot", "smoothgrad", params, pixels)
    while live.latest is None and not live.done.wait(0.02):
        pass
    live.stop_now()
    assert live.done.wait(60)
    out = live.outcome
    assert live.error is None and out is not None and out.final and not out.passed and not out.capped
    assert out.steps < 256 and out.result.info.params["nt_samples"] == str(out.steps)
    assert "Provisional: sharpening was stopped" in out.result.advice[0]
    assert set(threading.enumerate()) == before
    # the stopped map is kept for these settings, not recomputed, and not cached as final
    assert refine.start("vit-dot", "smoothgrad", params, pixels) is live
    refine.forget(live.key)
    assert refine.start("vit-dot", "smoothgrad", params, pixels) is not live


def test_a_finished_refinement_is_cached_under_its_settings():
    pixels = load_split().x_heldout[5].astype(np.float32) / 255.0
    live = refine.start("vit-dot", "integrated_gradients", IGParams(), pixels)
    assert live.done.wait(60) and live.outcome.passed
    from app.runtime.results import results

    assert results().get(refine.refine_key("vit-dot", "integrated_gradients", IGParams(), pixels)) is live.outcome
