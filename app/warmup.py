"""The start-up warm-up: what the first real view needs, made ready in the background once per process.

It imports what the first script run would import (torch, captum through ``analyzers``, altair,
pandas), reads the held-out digits, loads the default models through the same process-wide
caches the pages use, runs one small Integrated Gradients call per model (captum and autograd
pay their first-call costs there, under the model's lock like any analysis) and validates one
chart. A page that asks for the same model meanwhile waits for the one load.

This module is imported before the server starts, so it imports the heavy libraries (and the
rest of zooscope) inside the warm-up thread, not at its top: the server answers while they load.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

_log = logging.getLogger(__name__)

WARM_MODELS = ("vit-dot",)  # the default model of the Attribution page (and of Home's gallery)

WARM_LATER = ("vae-16d", "vae-2d")  # loaded after that: the Latent space page's models (small, fast to load)

WARM_ENV = "ZOOSCOPE_WARMUP"  # "0" turns the warm-up off

_warm_lock = threading.Lock()

_warm_thread: threading.Thread | None = None

warm_seconds: dict[str, float] = {}  # what the warm-up did and how long each step took (for the log and tests)


def warm_up(models: tuple[str, ...] = WARM_MODELS, *, wait: bool = False) -> threading.Thread | None:
    """Start, once per process, a background thread that makes the first real view fast (see the module doc).

    Failures are logged and ignored: the pages load and report on their own.
    """
    global _warm_thread
    if os.environ.get(WARM_ENV, "").strip() == "0":
        return None
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_warm, args=(tuple(models),), name="zooscope-warm-up",
                                            daemon=True)
            _warm_thread.start()
        thread = _warm_thread
    if wait:
        thread.join()
    return thread


def _warm(models: tuple[str, ...]) -> None:
    started = time.perf_counter()
    from analyzers import IGParams
    from app.charts.attribution import attribution_chart
    from app.charts.base import scores_chart
    from app.features.latent import heldout_uris
    from app.runtime import compute
    from app.runtime.familiarity import heldout_scores
    from app.runtime.models import freeze_long_lived, heldout_split, loaded_model

    warm_seconds["imports"] = time.perf_counter() - started

    def step(name: str, work: Callable[[], Any]) -> None:
        start = time.perf_counter()
        try:
            work()
        except Exception:  # noqa: BLE001 - a warm-up never takes the server down; the page will say what is wrong
            _log.warning("warm-up step %s failed", name, exc_info=True)
        warm_seconds[name] = time.perf_counter() - start

    def chart() -> None:
        zeros = np.zeros((28, 28), dtype=np.float32)
        attribution_chart(zeros, zeros).to_dict()  # altair's schema validation, compiled once
        scores_chart([str(i) for i in range(10)], np.zeros(10)).to_dict()

    def ig(name: str) -> None:
        # A handful of steps on a blank digit: captum's and autograd's first call happen here.
        compute.run("integrated_gradients", name, IGParams(n_steps=4), np.zeros((28, 28), dtype=np.float32))

    with _no_script_context_warning():
        step("held-out digits", heldout_split)
        for name in models:
            step(f"load {name}", lambda name=name: loaded_model(name))
            step(f"IG {name}", lambda name=name: ig(name))
        step("charts", chart)
        for name in WARM_LATER:
            step(f"load {name}", lambda name=name: loaded_model(name))
        step("latent tooltips", heldout_uris)  # the scatter's 1,000 digit pictures, made once per process
        step("upload familiarity", heldout_scores)  # the held-out scores an upload is compared with
    freeze_long_lived()
    print("zooscope: warm-up done: " + ", ".join(f"{k} {v:.2f} s" for k, v in warm_seconds.items()),
          file=sys.stderr, flush=True)


@contextmanager
def _no_script_context_warning() -> Iterator[None]:
    """Silence Streamlit's "missing ScriptRunContext" warning for cache calls from the warm-up thread."""
    quiet = [logging.getLogger(n) for n in ("streamlit.runtime.scriptrunner_utils.script_run_context",
                                            "streamlit.runtime.scriptrunner.script_run_context",
                                            "streamlit.runtime.caching.cache_utils")]
    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "ScriptRunContext" not in record.getMessage() or threading.current_thread() is not _warm_thread

    drop = _Drop()
    for logger in quiet:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in quiet:
            logger.removeFilter(drop)
