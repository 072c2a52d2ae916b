"""Run analyzers for the pages: numpy inputs in, cached result dataclasses out.

The one place where the app turns arrays into tensors and calls ``analyzers``; pages never
touch torch. Every call goes through :func:`app.cache.run_analysis`, so a result is computed
once per process under our own key and the model is held by one session at a time.

Every call is also guarded, so one request can never take the server down with it:

- cost: an analysis that asks for more model evaluations than ``ZOOSCOPE_MAX_EVALUATIONS``
  (n_steps x samples x baseline draws x examples) is refused before it starts, with advice;
- time: an analysis that runs longer than ``ZOOSCOPE_ANALYSIS_TIMEOUT_S`` seconds is stopped at
  the model's next forward pass (:class:`AnalysisTimeout`); the model lock is released;
- memory: out of memory is retried with half the internal batch (down to 1), then on a CPU copy
  of the model if it ran on an accelerator; failing that, :class:`AnalysisOutOfMemory` says so.

All of them are :class:`AnalysisError`: a message for people, never a traceback.

Analyses run on a few long-lived threads, not on the page's own thread; the ones that follow a
result already on screen (``run(..., follow_up=True)``) on threads of lower CPU priority.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from app import cache

_log = logging.getLogger(__name__)
R = TypeVar("R")

TIMEOUT_ENV = "ZOOSCOPE_ANALYSIS_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 60.0
BUDGET_ENV = "ZOOSCOPE_MAX_EVALUATIONS"
DEFAULT_MAX_EVALUATIONS = 16_384  # model evaluations (forward + backward) one analysis may ask for
BATCH_FIELDS = ("internal_batch_size", "perturbations_per_eval")  # halved on out of memory


class AnalysisError(Exception):
    """An analysis could not run; the message is for people (what was wrong, what to do)."""


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


class AnalysisTimeout(AnalysisError):
    """The analysis ran past the server's wall-clock limit and was stopped."""


class AnalysisOutOfMemory(AnalysisError):
    """The analysis ran out of memory with the smallest batch and on every device it could use."""


class AnalysisTooLarge(AnalysisError):
    """The analysis asks for more model evaluations than the server allows for one request."""


def input_sha256(inputs: np.ndarray | Sequence[Any] | None) -> str:
    """The identity of an input: sha256 of an image array's bytes, or of texts as JSON."""
    if inputs is None:
        return "none"
    if isinstance(inputs, np.ndarray):
        return cache.array_sha256(inputs)
    text = json.dumps([list(t) if isinstance(t, tuple) else t for t in inputs], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def image_batch(pixels: np.ndarray) -> Any:
    """(28, 28) or (B, 28, 28) pixels in [0, 1] -> a float tensor (B, 1, 28, 28)."""
    import torch

    a = np.asarray(pixels, dtype=np.float32)
    a = a[None] if a.ndim == 2 else a  # (B, 28, 28)
    return torch.from_numpy(np.array(a, dtype=np.float32, copy=True)).unsqueeze(1)  # (B, 1, 28, 28)


def _model_inputs(inputs: np.ndarray | Sequence[Any] | None) -> Any:
    if isinstance(inputs, np.ndarray):
        return image_batch(inputs)
    return None if inputs is None else list(inputs)


def _label(analyzer: str) -> str:
    from analyzers import ANALYZERS

    entry = ANALYZERS.get(analyzer)
    return entry.label if entry else analyzer


# --------------------------------------------------------------------------- limits from the environment


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        _log.warning("%s=%r is not a non-negative number; using %g", name, raw, default)
        return default
    return value


def timeout_s() -> float | None:
    """Seconds one analysis may run (``ZOOSCOPE_ANALYSIS_TIMEOUT_S``, default 60; 0 = no limit)."""
    value = _env_number(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)
    return value or None


def max_evaluations() -> int:
    """Model evaluations one analysis may ask for (``ZOOSCOPE_MAX_EVALUATIONS``, default 16,384)."""
    return int(_env_number(BUDGET_ENV, DEFAULT_MAX_EVALUATIONS))


# --------------------------------------------------------------------------- cost


def examples_in(inputs: np.ndarray | Sequence[Any] | None) -> int:
    """How many examples an input holds: one (28, 28) image, B stacked images, or len(texts)."""
    if inputs is None:
        return 1
    if isinstance(inputs, np.ndarray):
        return 1 if inputs.ndim <= 2 else int(inputs.shape[0])
    return max(1, len(inputs))


def cost_factors(params: Any, n_examples: int = 1) -> dict[str, int]:
    """The factors of an analysis's cost in model evaluations, by name (only those above 1).

    n_steps (a path integral) x nt_samples / n_samples (noise or path samples) x baseline_draws
    (uniform-noise baselines of Integrated Gradients) x examples.
    """
    get = lambda name: getattr(params, name, None)  # noqa: E731
    factors: dict[str, int] = {}
    if get("n_steps") and get("base") in (None, "integrated_gradients"):  # SmoothGrad over saliency has none
        factors["n_steps"] = int(get("n_steps"))
    for name in ("nt_samples", "n_samples"):
        if get(name):
            factors[name] = int(get(name))
    if get("baseline_draws") and get("n_steps") and get("baseline") == "uniform":  # GradientSHAP: a distribution
        factors["baseline_draws"] = int(get("baseline_draws"))
    if n_examples > 1:
        factors["examples"] = n_examples
    return {k: v for k, v in factors.items() if v > 1}


def check_budget(analyzer: str, model: str, params: Any, inputs: np.ndarray | Sequence[Any] | None = None) -> None:
    """Refuse an analysis whose cost exceeds :func:`max_evaluations`, saying what to lower and to what.

    Raises:
        AnalysisTooLarge: over budget.
    """
    budget = max_evaluations()
    factors = cost_factors(params, examples_in(inputs))
    total = math.prod(factors.values())
    if not budget or total <= budget:
        return
    from analyzers import field_specs

    lows = {s.name: (s.min or 1) for s in field_specs(type(params))} if params is not None else {}
    advice = []
    for name, value in factors.items():
        fits = value * budget // total  # the largest value of this factor alone that fits
        if name != "examples" and fits >= lows.get(name, 1):
            advice.append(f"{name} to {fits} or less")
    shown = " × ".join(f"{name} {value:,}" for name, value in factors.items())
    raise AnalysisTooLarge(
        f"{_label(analyzer)} on {model} would take {total:,} model evaluations ({shown}); this server allows "
        f"{budget:,} per analysis. Lower " + (" or ".join(advice) if advice else "the steps or samples")
        + ", then run it again.")


# --------------------------------------------------------------------------- time


class Deadline:
    """A wall-clock limit, checked before every module's forward pass of a watched model."""

    def __init__(self, seconds: float | None, what: str):
        self.seconds = seconds
        self.what = what
        self.at = None if seconds is None else time.monotonic() + seconds

    def check(self, *_: Any) -> None:
        """Raise :class:`AnalysisTimeout` once the limit has passed (usable as a forward pre-hook)."""
        if self.at is not None and time.monotonic() > self.at:
            raise AnalysisTimeout(
                f"{self.what} was stopped after {self.seconds:g} s, this server's limit for one analysis. "
                "Lower n_steps or the number of samples, or choose a faster method (Saliency takes one "
                "gradient), then run it again.")

    @contextmanager
    def watching(self, model: Any) -> Iterator[None]:
        """Check the deadline before every forward pass of ``model``'s modules for the block's duration.

        The hooks are installed by whoever holds the model's lock and always removed on the way out,
        so no other session ever runs through them.
        """
        if self.at is None or not hasattr(model, "modules"):
            yield
            return
        handles = [m.register_forward_pre_hook(self.check) for m in model.modules()]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


# --------------------------------------------------------------------------- memory


def smaller_batch(params: Any) -> Any | None:
    """``params`` with its internal batch sizes halved, or None when there is none above 1 to halve."""
    changes = {f: max(1, getattr(params, f) // 2) for f in BATCH_FIELDS if (getattr(params, f, 0) or 0) > 1}
    return params.replace(**changes) if changes else None


def _free_accelerator_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _halving(attempt: Callable[[Any, Any], R], model: Any, params: Any) -> R:
    """``attempt(model, params)``, halving the internal batch on out of memory until it is 1."""
    from analyzers.run import is_out_of_memory

    while True:
        try:
            return attempt(model, params)
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
            _free_accelerator_memory()
            smaller = smaller_batch(params)
            if smaller is None:
                raise
            _log.warning("out of memory; retrying with %s", {f: getattr(smaller, f) for f in BATCH_FIELDS
                                                               if hasattr(smaller, f)})
            params = smaller


def with_memory_fallback(attempt: Callable[[Any, Any], R], model: Any, params: Any, *, what: str,
                         cpu_copy: Callable[[], cache.LoadedModel]) -> R:
    """Run ``attempt(model, params)``: on out of memory halve the batch, then use a CPU copy of the model.

    Raises:
        AnalysisOutOfMemory: still out of memory with a batch of 1 on every device tried.
    """
    from analyzers.run import is_out_of_memory, model_device

    try:
        return _halving(attempt, model, params)
    except RuntimeError as e:
        if not is_out_of_memory(e):
            raise
    device = model_device(model) if hasattr(model, "parameters") else None
    smallest = ", even with an internal batch of 1" if any(hasattr(params, f) for f in BATCH_FIELDS) else ""
    advice = "Lower n_steps or the number of samples, or try again when the server is less busy."
    if device is None or device.type == "cpu":
        raise AnalysisOutOfMemory(f"{what} ran out of memory{smallest}. {advice}") from None
    _log.warning("%s ran out of memory on %s; falling back to the CPU", what, device)
    entry = cpu_copy()
    with entry.lock:
        try:
            return _halving(attempt, entry.model, params)
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
    raise AnalysisOutOfMemory(f"{what} ran out of memory on {device} and on the CPU{smallest}. {advice}") from None


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
    from concurrent.futures import ThreadPoolExecutor

    with _pools_lock:
        if kind not in _pools:
            _pools[kind] = ThreadPoolExecutor(max_workers=COMPUTE_THREADS, thread_name_prefix=f"{_THREAD_PREFIX}-{kind}",
                                              initializer=_lower_priority if kind == "follow-up" else None)
        return _pools[kind]


def _submit(kind: str, work: Callable[[], R]) -> R:
    """``work()`` on a long-lived thread of pool ``kind``, waited for (with the caller's context)."""
    if threading.current_thread().name.startswith(_THREAD_PREFIX):
        return work()  # already on one: run here rather than wait on a pool this thread may belong to
    return _pool(kind).submit(contextvars.copy_context().run, work).result()


# --------------------------------------------------------------------------- running


def run(analyzer: str, model: str, params: Any, inputs: np.ndarray | Sequence[Any] | None = None, *,
        depends_on: str = "", follow_up: bool = False, **kwargs: Any) -> Any:
    """Run analyzer ``analyzer`` (a key of ``analyzers.ANALYZERS``) on zoo model ``model``, cached and guarded.

    Args:
        params: the analyzer's params dataclass (canonical form goes into the cache key).
        inputs: (28, 28) / (B, 28, 28) pixels, a list of texts or pairs, or None.
        depends_on: an extra key part for results that take another result as input (e.g. the
            attribution key for deletion curves), so different orderings never share an entry.
        follow_up: the analysis follows a result already on screen (the deletion/insertion curves
            after the heatmap): it runs at a lower CPU priority, so the browser drawing what was just
            sent, and other sessions' first results, get the CPU first.
        kwargs: passed to the analyzer (e.g. ``attributions=`` for deletion curves).

    Raises:
        AnalysisError: the params do not fit or cost too much (:class:`AnalysisTooLarge`), the
            checkpoint is missing, the analysis ran too long (:class:`AnalysisTimeout`) or out of
            memory (:class:`AnalysisOutOfMemory`), or it failed.
    """
    from analyzers import ParamError, params_to_mapping
    from model_zoo import CheckpointError, get_spec

    try:
        spec = get_spec(model)
    except KeyError as e:
        raise AnalysisError(str(e.args[0]) if e.args else f"unknown model {model!r}") from None
    what = f"{_label(analyzer)} on {model}"
    try:
        check_budget(analyzer, model, params, inputs)
        key = cache.result_key(input_sha256=input_sha256(inputs), model=model, analysis=analyzer,
                               params=params_to_mapping(params), extra={"depends_on": depends_on})
        if _CACHE_ONLY.get():
            hit = cache.results().get(key)
            if hit is None:
                raise NotCached(key)
            return hit
        return cache.run_analysis(model, key, lambda m: _submit(
            "follow-up" if follow_up else "first", lambda: _guarded(analyzer, model, m, spec, inputs, params, what, kwargs)))
    except (AnalysisError, NotCached):
        raise
    except ParamError as e:
        raise AnalysisError(f"{e}") from None
    except CheckpointError as e:
        raise AnalysisError(f"The model could not be loaded: {e}") from None
    except NotImplementedError:
        raise AnalysisError(f"{analyzer} is not available in this build of zooscope yet.") from None
    except Exception as e:  # a bug or the machine: say so plainly, keep the traceback in the server log
        _log.exception("analysis %s on %s failed", analyzer, model)
        raise AnalysisError(f"{what} failed ({type(e).__name__}). The details are in the server "
                            "log; try other settings, or try again.") from None


def _guarded(analyzer: str, name: str, model: Any, spec: Any, inputs: Any, params: Any, what: str,
             kwargs: dict[str, Any]) -> Any:
    """Run the analyzer under the deadline and the out-of-memory fallbacks (the model's lock is held)."""
    import analyzers

    deadline = Deadline(timeout_s(), what)  # starts once the lock is held: waiting for it does not count
    x = _model_inputs(inputs)

    def attempt(m: Any, p: Any) -> Any:
        with deadline.watching(m):
            return analyzers.run_analyzer(analyzer, m, spec, x, p, **kwargs)

    return with_memory_fallback(attempt, model, params, what=what, cpu_copy=lambda: cache.cpu_model(name))


def key_of(analyzer: str, model: str, params: Any, inputs: np.ndarray | Sequence[Any] | None) -> str:
    """The cache key :func:`run` uses (for results that depend on another result)."""
    from analyzers import params_to_mapping

    return cache.result_key(input_sha256=input_sha256(inputs), model=model, analysis=analyzer,
                            params=params_to_mapping(params), extra={"depends_on": ""})
