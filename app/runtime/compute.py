"""Run analyzers for the pages and the command line: numpy inputs in, cached result dataclasses out.

The one place where zooscope turns arrays into tensors and calls ``analyzers``; pages never
touch torch. Every call looks its model's spec up once, checks the budget, and runs under the
model's lock, the deadline and the out-of-memory fallback (:mod:`app.runtime.guards`); its result
is cached under our own key (:mod:`app.runtime.results`), so it is computed once per process.

Analyses run on a few long-lived threads, not on the page's own thread; the ones that follow a
result already on screen (``run(..., follow_up=True)``) on threads of lower CPU priority.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch

import analyzers
from analyzers import ParamError, params_to_mapping
from app.runtime import guards, jobs, models
from app.runtime.copies import using_model
from app.runtime.guards import AnalysisCancelled, AnalysisError
from app.runtime.results import input_sha256, result_key, results
from model_zoo import CheckpointError, ModelSpec, get_spec

_log = logging.getLogger(__name__)
R = TypeVar("R")


class NotCached(Exception):
    """Raised by :func:`run` inside :func:`cache_only` when the result has not been computed yet."""


_CACHE_ONLY = contextvars.ContextVar("zooscope_cache_only", default=False)


@contextmanager
def cache_only() -> Iterator[None]:
    """Within this block :func:`run` returns cached results only and raises :class:`NotCached` otherwise.

    Lets a page show a result it already has without a spinner (which costs a thread and two
    messages per run); only work that really runs gets one.
    """
    token = _CACHE_ONLY.set(True)
    try:
        yield
    finally:
        _CACHE_ONLY.reset(token)


def model_inputs(inputs: np.ndarray | Sequence[Any] | None) -> Any:
    """What an analyzer takes: (28, 28) or (B, 28, 28) pixels as a float tensor (B, 1, 28, 28); texts as a list."""
    if not isinstance(inputs, np.ndarray):
        return None if inputs is None else list(inputs)
    a = np.asarray(inputs, dtype=np.float32)
    a = a[None] if a.ndim == 2 else a  # (B, 28, 28)
    return torch.from_numpy(np.array(a, dtype=np.float32, copy=True)).unsqueeze(1)  # (B, 1, 28, 28)


# --------------------------------------------------------------------------- compute threads

# Analyses run on a few long-lived threads, never on Streamlit's script threads (a new one for
# every run of a page). torch work spread over short-lived threads grew the server's memory by
# 19-29 % over 100 analyses (``zooscope bench app``, memory figure); on long-lived threads 3-6 %.
FOLLOW_UP_NICE = 10  # how much lower the follow-up threads' CPU priority is (Linux nice steps)

COMPUTE_THREADS = max(2, min(8, os.cpu_count() or 2))  # at most this many analyses at once (other models)

_THREAD_PREFIX = "zooscope-compute"

_pools: dict[str, Any] = {}

_pools_lock = threading.Lock()


def _lower_priority() -> None:
    """Lower the calling thread's CPU priority by :data:`FOLLOW_UP_NICE`. Linux only: there nice is
    per thread, and the threads torch starts from this one inherit it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + FOLLOW_UP_NICE))
    except OSError as e:  # not allowed: the work still runs, at normal priority
        _log.info("follow-up analyses run at normal priority (%s)", e)


def _pool(kind: str) -> Any:
    with _pools_lock:
        if kind not in _pools:
            workers = 1 if kind == "heavy" else COMPUTE_THREADS  # heavy analyses: one at a time
            _pools[kind] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{_THREAD_PREFIX}-{kind}",
                                              initializer=_lower_priority if kind != "first" else None)
        return _pools[kind]


def _submit(kind: str, work: Callable[[], R], current: jobs.Job) -> R:
    """``work()`` on a long-lived thread of pool ``kind``, waited for (with the caller's context); a page
    waiting hears how ``current`` does (:func:`jobs.wait_for`)."""
    if threading.current_thread().name.startswith(_THREAD_PREFIX):
        return work()  # already on one: run here rather than wait on a pool this thread may belong to
    return jobs.wait_for(_pool(kind).submit(contextvars.copy_context().run, work), current)


# --------------------------------------------------------------------------- running


def run(analyzer: str, model: str, params: Any, inputs: np.ndarray | Sequence[Any] | None = None, *,
        depends_on: str = "", follow_up: bool = False, progress_in: str = "", **kwargs: Any) -> Any:
    """Run analyzer ``analyzer`` (a key of ``analyzers.ANALYZERS``) on model ``model``, cached and guarded.

    Args:
        params: the analyzer's params dataclass (canonical form goes into the cache key).
        inputs: (28, 28) / (B, 28, 28) pixels, a list of texts or pairs, or None.
        depends_on: an extra key part for results that take another result as input (e.g. the
            attribution key for deletion curves), so different orderings never share an entry.
        follow_up: the analysis follows a result already on screen (the deletion/insertion curves
            after the heatmap): it runs at a lower CPU priority, so the browser drawing what was just
            sent, and other sessions' first results, get the CPU first.
        progress_in: for analyzers that report their progress (``on_step(done, total)``), what
            they count ("layers"): a waiting page shows a progress bar (:func:`jobs.advance`).
        kwargs: passed to the analyzer (e.g. ``attributions=`` for deletion curves).

    Raises:
        AnalysisError: the params do not fit or cost too much (``AnalysisTooLarge``), the
            checkpoint is missing, the analysis ran too long (``AnalysisTimeout``) or out of
            memory (``AnalysisOutOfMemory``), or it failed.
    """
    spec = spec_of(model)
    entry = analyzers.ANALYZERS.get(analyzer)
    what = f"{entry.label if entry else analyzer} on {model}"

    def key() -> str:
        return _key(analyzer, spec, params, inputs, depends_on)

    def work(m: Any) -> Any:
        if progress_in:
            kwargs["on_step"] = lambda done, total: jobs.advance(done, total, progress_in)
        return analyzers.run_analyzer(analyzer, m, spec, model_inputs(inputs), params, **kwargs)

    return run_work(spec, what, key, work, params=params, inputs=inputs, follow_up=follow_up)


def run_work(spec: ModelSpec, what: str, key: Callable[[], str], work: Callable[[Any], R], *, params: Any = None,
             inputs: np.ndarray | Sequence[Any] | None = None, follow_up: bool = False) -> R:
    """``work(model)`` for model ``spec`` behind every guard, cached under ``key()``: the one path every
    analysis takes (:func:`run`, the pose decoder's sliders, the command line).

    ``what`` names the work for people ("Integrated Gradients on vit-dot"); ``params`` and
    ``inputs`` say its cost (:func:`guards.check_budget`), which also decides whether it is heavy
    (:mod:`app.runtime.jobs`).
    """
    try:
        guards.check_budget(what, params, inputs)
        cache_key = key()
        hit = results().get(cache_key)
        if hit is not None:
            return hit
        if _CACHE_ONLY.get():
            raise NotCached(cache_key)
        if jobs.declined(cache_key):
            raise AnalysisCancelled(f"{what} was cancelled. Run it again, or change a setting.")
        evaluations = math.prod(guards.cost_factors(params, guards.examples_in(inputs)).values())
        with jobs.job(what, evaluations, cache_key) as current:
            kind = "heavy" if current.heavy else "follow-up" if follow_up else "first"
            return _submit(kind, lambda: _run_job(spec, current, work), current)
    except (AnalysisError, NotCached):
        raise
    except ParamError as e:
        raise AnalysisError(f"{e}") from None
    except CheckpointError as e:
        raise AnalysisError(f"The model could not be loaded: {e}") from None
    except NotImplementedError:
        raise AnalysisError(f"{what} is not available in this build of zooscope yet.") from None
    except Exception as e:  # a bug or the machine: say so plainly, keep the traceback in the server log
        _log.exception("%s failed", what)
        raise AnalysisError(f"{what} failed ({type(e).__name__}). The details are in the server "
                            "log; try other settings, or try again.") from None


def _run_job(spec: ModelSpec, current: jobs.Job, work: Callable[[Any], R]) -> R:
    """On a compute thread: take a free copy of the model, then run ``work`` on it (unless cancelled meanwhile)."""
    def waiting() -> None:
        current.waiting_for = f"a free copy of {spec.name} (every copy is busy with another analysis)"

    current.waiting_for = f"a copy of {spec.name}"
    with using_model(spec.name, waiting) as m:
        if current.cancelled.is_set():
            raise AnalysisCancelled(f"{current.what} was cancelled.")
        hit = results().get(current.key)  # another session may have computed it while this one waited
        if hit is not None:
            return hit
        current.started, current.waiting_for = time.monotonic(), ""
        with jobs.running_as(current):
            value = _guarded(spec, m, current, work)
    results().put(current.key, value)
    return value


def spec_of(model: str) -> ModelSpec:
    """The spec of model ``model``, looked up once per analysis; an unknown name is an :class:`AnalysisError`."""
    try:
        return get_spec(model)
    except KeyError as e:
        raise AnalysisError(str(e.args[0]) if e.args else f"unknown model {model!r}") from None


def _guarded(spec: ModelSpec, model: Any, current: jobs.Job, work: Callable[[Any], R]) -> R:
    """``work(model)`` under the deadline, the cancel flag and the out-of-memory fallback (the model is held)."""
    deadline = guards.Deadline(guards.timeout_s(), current.what, current.cancelled)  # waiting does not count

    def attempt(m: Any) -> R:
        with deadline.watching(m):
            return work(m)

    return guards.with_memory_fallback(attempt, model, what=current.what,
                                       cpu_copy=lambda: models.cpu_model(spec.name))


def _key(analyzer: str, spec: ModelSpec, params: Any, inputs: Any, depends_on: str) -> str:
    return result_key(input_sha256=input_sha256(inputs), spec=spec, analysis=analyzer,
                      params=params_to_mapping(params), extra={"depends_on": depends_on})


def key_of(analyzer: str, model: str, params: Any, inputs: np.ndarray | Sequence[Any] | None) -> str:
    """The cache key :func:`run` uses (for results that depend on another result)."""
    return _key(analyzer, spec_of(model), params, inputs, "")
