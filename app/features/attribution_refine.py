"""Sharpen progressively: an attribution drawn at once and refined in place until its check passes.

For Integrated Gradients, SmoothGrad and GradientSHAP on image models (:mod:`analyzers.refine`). The
refinement runs on a compute thread behind the usual guards (budget, time limit, cancel flag, one heavy
analysis per visitor) and keeps going while the page reruns; the page draws each provisional map in one
place, labelled with its completeness error (or spread across samples) and a progress readout, with a Stop
button that keeps the current result. The result returned is the final one, or the one stopped at, marked
as such in its advice; its params (``n_steps`` and ``method``, or the samples) say the steps used, so
exports and share links carry them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

from analyzers import params_to_mapping
from analyzers.refine import DEFAULT_CAP, DEFAULT_MAX_SAMPLES, DEFAULT_RULE, REFINABLE, Refinement, refine, with_note
from app.runtime import compute, guards, jobs
from app.runtime.guards import AnalysisError
from app.runtime.results import input_sha256, result_key, results
from app.ui import messages
from app.ui.pickers import method_label
from app.ui.results import visitor
from app.ui.vega import attribution_spec, in_place

TOGGLE_LABEL = "Sharpen progressively"
TOGGLE_HELP = ("Draw a coarse map at once and refine it in place until it passes its check: Integrated Gradients "
               f"adds path points on a nested {DEFAULT_RULE} grid (up to {DEFAULT_CAP}) until the completeness error "
               f"is under 5%; SmoothGrad and GradientSHAP double their samples (up to {DEFAULT_MAX_SAMPLES}) until "
               "the spread across samples is under 10%. Off: one run with the steps and samples set below.")
POLL_S = 0.2  # how often the page looks for a sharper map
SLOT = "refine-map"
_SESSION_LIVE = "zooscope.refine.live"  # session-state key: the key of this session's refinement in flight
MAX_LIVE = 32


@dataclass
class Live:
    """One refinement in flight (or just ended) on a compute thread."""

    key: str  # the stable cache key of its final result
    what: str
    job_key: str = ""  # unique per run: what its job is found by
    latest: Refinement | None = None
    outcome: Refinement | None = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def stop_now(self) -> None:
        """Stop at the next forward pass, keeping the last map drawn."""
        self.stop.set()
        for job in jobs.running():
            if job.key == self.job_key:
                job.cancel()


_live: OrderedDict[str, Live] = OrderedDict()
_live_lock = threading.Lock()


def offered(model: str, method: str) -> bool:
    """Whether the method is refined progressively on this model (image models only)."""
    if method not in REFINABLE:
        return False
    try:
        return compute.spec_of(model).input.modality == "image"
    except AnalysisError:
        return False


# URL keys that fix how many path points or samples an analysis takes: a link that names them asks for
# exactly that computation (a colleague's "n_steps=2" reproduces a flagged readout, a budget check refuses
# "n_steps=1024"), so sharpening starts off there; a visit without them sharpens.
FIXED_BY_LINK = frozenset({"n_steps", "param.method", "n_samples"})


def toggle(key: str = "attribution.refine") -> bool:
    """The 'Sharpen progressively' switch: on by default, off when the link fixes the steps or samples."""
    fixed = any(k in FIXED_BY_LINK for k in st.query_params.keys())
    return st.toggle(TOGGLE_LABEL, value=not fixed, key=key, help=TOGGLE_HELP)


def refine_key(model: str, method: str, params: Any, pixels: np.ndarray) -> str:
    spec = compute.spec_of(model)
    return result_key(input_sha256=input_sha256(pixels), spec=spec, analysis=f"refine:{method}",
                      params=params_to_mapping(params), extra={"rule": DEFAULT_RULE, "cap": str(step_cap(method, params))})


def _at(method: str, params: Any, steps: int) -> Any:
    """``params`` with ``steps`` path points (IG) or samples (SmoothGrad, GradientSHAP)."""
    name = {"integrated_gradients": "n_steps", "smoothgrad": "nt_samples", "gradient_shap": "n_samples"}[method]
    return params.replace(**{name: steps})


def step_cap(method: str, params: Any) -> int:
    """The most steps (or samples) a refinement may reach: the default cap, lowered to fit the server's budget
    of evaluations per analysis (``ZOOSCOPE_MAX_EVALUATIONS``) with the params' other cost factors."""
    cap = DEFAULT_CAP if method == "integrated_gradients" else DEFAULT_MAX_SAMPLES
    budget = guards.max_evaluations()
    per_step = int(np.prod(list(_at(method, params, 2).cost_factors().values()) or [1])) // 2
    return max(2, min(cap, budget // max(1, per_step))) if budget else cap


def start(model: str, method: str, params: Any, pixels: np.ndarray, owner: str = "") -> Live:
    """Start (or find) the refinement of ``method`` on ``pixels``; it runs on a compute thread."""
    key = refine_key(model, method, params, pixels)
    with _live_lock:
        live = _live.get(key)
        if live is not None and not (live.done.is_set() and (live.error or live.outcome is None
                                                              or not live.outcome.final)):
            return live
        live = Live(key, f"{method_label(method)} (sharpening) on {model}")
        live.job_key = f"{key}:{id(live)}:{time.monotonic_ns()}"
        _live[key] = live
        while len(_live) > MAX_LIVE:
            _live.popitem(last=False)
    spec = compute.spec_of(model)
    cap = step_cap(method, params)
    cap_params = _at(method, params, cap)

    def work(m: Any) -> Refinement:
        gen = refine(m, spec, compute.model_inputs(pixels), method, params, cap=cap, should_stop=live.stop.is_set)
        last = None
        try:
            for last in gen:
                live.latest = last
                jobs.advance(last.level + 1, last.level + 1 if last.final else last.level + 2, "levels")
                if live.stop.is_set() and not last.final:
                    return with_note(last, f"Provisional: sharpening was stopped at {last.steps} steps.")
        except AnalysisError as e:  # cancelled (Stop) or the time limit: keep what was drawn
            if last is None:
                raise
            why = "stopped" if live.stop.is_set() else f"stopped by the time limit ({e})"
            return with_note(last, f"Provisional: sharpening was {why} at {last.steps} steps.")
        finally:
            gen.close()
        return last

    def run() -> None:
        try:
            with jobs.acting_for(owner):
                out = compute.run_work(spec, live.what, lambda: live.job_key, work, params=cap_params,
                                       inputs=pixels)
            live.outcome = out
            if out.final and (out.passed or out.capped) and not live.stop.is_set():
                results().put(key, out)
        except AnalysisError as e:
            live.error = str(e)
        except Exception as e:  # noqa: BLE001 - run_work turns failures into AnalysisError; this is a last guard
            live.error = f"{live.what} failed ({type(e).__name__})."
        finally:
            live.done.set()

    evaluations = int(np.prod(list(cap_params.cost_factors().values()) or [1]))
    pool = compute._pool("heavy" if evaluations >= jobs.heavy_evaluations() else "first")
    pool.submit(run)
    return live


def _stop_other(key: str) -> None:
    """This session moved on: stop its refinement of other settings (their partial maps are kept)."""
    old = st.session_state.get(_SESSION_LIVE)
    if old and old != key:
        live = _live.get(old)
        if live is not None and not live.done.is_set():
            live.stop_now()
    st.session_state[_SESSION_LIVE] = key


def _draw(slot: Any, step: Refinement, title: str) -> None:
    r = step.result
    pixels, attr = np.asarray(r.inputs[0]), np.asarray(r.attributions[0])
    if pixels.ndim == 3:  # (C, H, W): the mean image, the attribution summed over channels
        pixels, attr = pixels.mean(0), attr.reshape(pixels.shape).sum(0)
    attr = attr.reshape(pixels.shape)
    spec = attribution_spec(pixels, attr, title=title)
    with slot.container():
        if spec is not None:
            st.vega_lite_chart(in_place(spec, SLOT), width="content")
        else:  # no converter in this Streamlit: draw the chart itself
            from app.charts.attribution import attribution_chart
            st.altair_chart(attribution_chart(pixels, attr, None, title=title), width="content")
        st.caption(messages.escape(f"Provisional — {step.status().removeprefix('provisional: ')}. Sharpening…"))


def summary(step: Refinement) -> str:
    """What the refinement did, in words, for the caption above the final map."""
    return (f"Sharpened progressively — {step.status()}; {step.evaluations:,} gradient evaluations in "
            f"{step.seconds:.1f} s.")


def progressive_attribution(model: str, method: str, params: Any, pixels: np.ndarray) -> Any | None:
    """The attribution of ``pixels``, drawn provisionally at once and sharpened in place; the final (or
    stopped) result, or None when it could not run (the reason is shown)."""
    key = refine_key(model, method, params, pixels)
    hit = results().get(key)
    if hit is not None:
        st.caption(messages.escape(summary(hit)))
        return hit.result
    _stop_other(key)
    live = start(model, method, params, pixels, visitor())
    title = f"{method_label(method)} on {model} (provisional)"
    slot, progress, button = st.empty(), st.empty(), st.empty()
    if not live.done.is_set():
        button.button("Stop sharpening", key=f"refine-stop.{key[:16]}", icon=":material/stop_circle:",
                      on_click=live.stop_now, help="Keep the map drawn now and stop refining it.")
    drawn = None
    while not live.done.wait(POLL_S):
        step = live.latest
        if step is not None and step is not drawn:
            _draw(slot, step, title)
            drawn = step
        level = f"level {step.level + 1}, {step.steps} steps, " if step is not None else "starting, "
        progress.caption(messages.escape(f"Sharpening: {level}{time.monotonic() - live.started:.1f} s"))
    slot.empty()
    progress.empty()
    button.empty()
    if live.error is not None or live.outcome is None:
        messages.error(live.error or f"{live.what} did not finish.")
        return None
    out = live.outcome
    st.caption(messages.escape(summary(out)))
    if not out.passed:
        messages.warning(("The step cap was reached before the check passed: " if out.capped else
                          "This is a provisional result: ") + out.status() + ".")
        if not out.capped:
            st.button("Sharpen again", key=f"refine-again.{key[:16]}", icon=":material/replay:", on_click=forget,
                      args=(key,), help="Start refining this map again from the first level.")
    return out.result


def forget(key: str) -> None:
    """Drop a stopped refinement, so the next run starts it again."""
    with _live_lock:
        _live.pop(key, None)
