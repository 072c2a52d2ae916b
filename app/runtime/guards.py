"""The guards every analysis runs behind, from the web app or the command line: cost, time, memory.

- cost: an analysis that asks for more model evaluations than ``ZOOSCOPE_MAX_EVALUATIONS``
  (its params' :meth:`~analyzers.Params.cost_factors` x examples) is refused before it starts,
  with advice (:class:`AnalysisTooLarge`);
- time: an analysis that runs longer than ``ZOOSCOPE_ANALYSIS_TIMEOUT_S`` seconds is stopped at
  the model's next forward pass (:class:`AnalysisTimeout`);
- memory: the analyzers halve their internal batch on out of memory down to 1
  (``analyzers.run.halving_on_oom``); an analysis still out of memory on an accelerator is run
  again on a CPU copy of the model, and failing that :class:`AnalysisOutOfMemory` says so.

All of them are :class:`AnalysisError`: a message for people, never a traceback.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch

from analyzers import field_specs
from analyzers.run import is_out_of_memory, model_device
from app.runtime.models import LoadedModel

_log = logging.getLogger(__name__)
R = TypeVar("R")

TIMEOUT_ENV = "ZOOSCOPE_ANALYSIS_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 60.0
BUDGET_ENV = "ZOOSCOPE_MAX_EVALUATIONS"
DEFAULT_MAX_EVALUATIONS = 16_384  # model evaluations (forward + backward) one analysis may ask for


class AnalysisError(Exception):
    """An analysis could not run; the message is for people (what was wrong, what to do)."""


class AnalysisTimeout(AnalysisError):
    """The analysis ran past the server's wall-clock limit and was stopped."""


class AnalysisOutOfMemory(AnalysisError):
    """The analysis ran out of memory with the smallest batch and on every device it could use."""


class AnalysisBusy(AnalysisError):
    """The visitor already has a heavy analysis queued or running (see ``app.runtime.jobs``)."""


class AnalysisCancelled(AnalysisError):
    """The visitor cancelled the analysis, or left the page while it ran."""


class AnalysisTooLarge(AnalysisError):
    """The analysis asks for more model evaluations than the server allows for one request."""


# --------------------------------------------------------------------------- limits from the environment


def env_number(name: str, default: float) -> float:
    """The non-negative number in environment variable ``name``; ``default`` when unset or bad (with a warning)."""
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
    value = env_number(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)
    return value or None


def max_evaluations() -> int:
    """Model evaluations one analysis may ask for (``ZOOSCOPE_MAX_EVALUATIONS``, default 16,384)."""
    return int(env_number(BUDGET_ENV, DEFAULT_MAX_EVALUATIONS))


# --------------------------------------------------------------------------- cost


def examples_in(inputs: np.ndarray | Sequence[Any] | None) -> int:
    """How many examples an input holds: one (28, 28) image, B stacked images, or len(texts)."""
    if inputs is None:
        return 1
    if isinstance(inputs, np.ndarray):
        return 1 if inputs.ndim <= 2 else int(inputs.shape[0])
    return max(1, len(inputs))


def cost_factors(params: Any, n_examples: int = 1) -> dict[str, int]:
    """The factors of an analysis's cost in model evaluations, by name (only those above 1): what its
    params say one example costs (:meth:`analyzers.Params.cost_factors`), and the examples."""
    factors = dict(params.cost_factors()) if params is not None else {}
    factors["examples"] = n_examples
    return {k: int(v) for k, v in factors.items() if int(v) > 1}


def check_budget(what: str, params: Any, inputs: np.ndarray | Sequence[Any] | None = None) -> None:
    """Refuse an analysis (``what``: "Integrated Gradients on vit-dot") whose cost exceeds
    :func:`max_evaluations`, saying what to lower and to what.

    Raises:
        AnalysisTooLarge: over budget.
    """
    budget = max_evaluations()
    factors = cost_factors(params, examples_in(inputs))
    total = math.prod(factors.values())
    if not budget or total <= budget:
        return
    lows = {s.name: (s.min or 1) for s in field_specs(type(params))} if params is not None else {}
    advice = [f"{name} to {value * budget // total} or less" for name, value in factors.items()
              if name != "examples" and value * budget // total >= lows.get(name, 1)]  # the most that fits alone
    shown = " × ".join(f"{name} {value:,}" for name, value in factors.items())
    raise AnalysisTooLarge(
        f"{what} would take {total:,} model evaluations ({shown}); this server allows {budget:,} per analysis. "
        "Lower " + (" or ".join(advice) if advice else "the steps or samples") + ", then run it again.")


# --------------------------------------------------------------------------- time


class Deadline:
    """A wall-clock limit (and a cancel flag), checked before every module's forward pass of a watched model."""

    def __init__(self, seconds: float | None, what: str, cancelled: threading.Event | None = None):
        self.seconds = seconds
        self.what = what
        self.at = None if seconds is None else time.monotonic() + seconds
        self.cancelled = cancelled

    def check(self, *_: Any) -> None:
        """Raise :class:`AnalysisTimeout` once the limit has passed, :class:`AnalysisCancelled` once
        cancelled (usable as a forward pre-hook)."""
        if self.cancelled is not None and self.cancelled.is_set():
            raise AnalysisCancelled(f"{self.what} was cancelled.")
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
        if (self.at is None and self.cancelled is None) or not hasattr(model, "modules"):
            yield
            return
        def hook(*_: Any) -> None:  # a function, not a bound method: a deep copy of the model shares the limit
            self.check()

        handles = [m.register_forward_pre_hook(hook) for m in model.modules()]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


# --------------------------------------------------------------------------- memory


def _free_accelerator_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def with_memory_fallback(attempt: Callable[[Any], R], model: Any, *, what: str,
                         cpu_copy: Callable[[], LoadedModel]) -> R:
    """Run ``attempt(model)``; still out of memory on an accelerator, run it on a CPU copy of the model.

    The analyzers have halved their internal batch down to 1 before an out-of-memory error gets here.

    Raises:
        AnalysisOutOfMemory: out of memory on every device tried.
    """
    try:
        return attempt(model)
    except RuntimeError as e:
        if not is_out_of_memory(e):
            raise
    _free_accelerator_memory()
    device = model_device(model) if hasattr(model, "parameters") else None
    advice = "Lower n_steps or the number of samples, or try again when the server is less busy."
    if device is None or device.type == "cpu":
        raise AnalysisOutOfMemory(f"{what} ran out of memory, even with the smallest batch. {advice}") from None
    _log.warning("%s ran out of memory on %s; falling back to the CPU", what, device)
    entry = cpu_copy()
    with entry.lock:
        try:
            return attempt(entry.model)
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
    raise AnalysisOutOfMemory(f"{what} ran out of memory on {device} and on the CPU, even with the smallest "
                              f"batch. {advice}") from None
