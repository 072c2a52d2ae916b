"""Caching in one place: models once per process, results under zooscope's own keys.

- Models are loaded once per process (``st.cache_resource``) and shared by every session.
  Each has its own lock: :func:`using_model` holds it while an analysis runs, so hooks that
  one session's analyzer attaches can never disturb another session's numbers.
- Results are cached under :func:`result_key`: sha256 over the input's bytes, the model, the
  analysis, canonical params and the checkpoint's sha256. Streamlit never hashes an array.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import streamlit as st

R = TypeVar("R")

MAX_RESULTS = 256  # results kept per process, least recently used dropped first


@dataclass(frozen=True)
class LoadedModel:
    """A model shared by all sessions, the lock that serialises its use, and its checkpoint hash."""

    name: str
    model: Any  # torch.nn.Module in eval mode, parameters frozen
    lock: threading.RLock
    sha256: str
    device: str


@st.cache_resource(show_spinner="Loading the model…", max_entries=32)
def _loaded(name: str) -> LoadedModel:
    import model_zoo

    model = model_zoo.load(name)
    device = str(next(model.parameters()).device) if any(True for _ in model.parameters()) else "cpu"
    entry = LoadedModel(name, model, threading.RLock(), model_zoo.get_spec(name).sha256, device)
    freeze_long_lived()
    return entry


def freeze_long_lived() -> None:
    """Put what is alive now (imported libraries, loaded models) out of the garbage collector's reach.

    Streamlit runs a full collection after every script run, which keeps memory flat; over a heap
    of half a million objects (torch, transformers, the models) each one held the interpreter for
    ~0.2 s while the run's charts waited to be sent. Frozen objects are never scanned again, so the
    collection after a run only looks at what that run made (well under a millisecond). Called
    after the warm-up and after each model load; garbage is collected first, so none is frozen.
    """
    import gc

    gc.collect()
    gc.freeze()


@st.cache_resource(show_spinner="Loading a CPU copy of the model…", max_entries=8)
def _cpu_loaded(name: str) -> LoadedModel:
    import model_zoo

    return LoadedModel(name, model_zoo.load(name, "cpu"), threading.RLock(), model_zoo.get_spec(name).sha256, "cpu")


def cpu_model(name: str) -> LoadedModel:
    """A CPU copy of model ``name`` with its own lock: where an analysis goes when an accelerator runs out
    of memory. Loaded from the checkpoint (not copied from the accelerator, which has no room left)."""
    return _cpu_loaded(name)


def loaded_model(name: str) -> LoadedModel:
    """The process-wide model ``name``, loading it on first use.

    Raises:
        KeyError: unknown model; model_zoo.CheckpointError: its checkpoint is missing or bad.
    """
    return _loaded(name)


@contextmanager
def using_model(name: str) -> Iterator[Any]:
    """Hold model ``name`` exclusively for the duration of the block and yield it."""
    entry = _loaded(name)
    with entry.lock:
        yield entry.model


class ResultCache:
    """A thread-safe least-recently-used mapping from our keys to analyzer results."""

    def __init__(self, max_entries: int = MAX_RESULTS):
        self.max_entries = max_entries
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@st.cache_resource(show_spinner=False)
def results() -> ResultCache:
    """The process-wide result cache."""
    return ResultCache()


def array_sha256(array: np.ndarray) -> str:
    """sha256 over an array's dtype, shape and bytes: the identity of an input."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def result_key(*, input_sha256: str, model: str, analysis: str, params: Mapping[str, str],
               extra: Mapping[str, Any] | None = None) -> str:
    """Our cache key: sha256 of the canonical JSON of input hash, model, analysis and params.

    ``params`` must be canonical (``analyzers.params_to_mapping``), so equal params give equal
    keys however they were entered. The checkpoint's sha256 is included, so a retrained model
    never serves stale results.
    """
    import model_zoo

    payload = {"input": input_sha256, "model": model, "checkpoint": model_zoo.get_spec(model).sha256,
               "analysis": analysis, "params": dict(params), "extra": dict(extra or {})}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cached(key: str, compute: Callable[[], R]) -> R:
    """The cached value for ``key``, computing and storing it on a miss.

    Cached results are shared by every session: treat them as read-only.
    """
    hit = results().get(key)
    if hit is not None:
        return hit
    value = compute()
    results().put(key, value)
    return value


def run_analysis(model: str, key: str, compute: Callable[[Any], R]) -> R:
    """Run ``compute(model)`` under the model's lock, or return the result cached under ``key``.

    The cache is checked again once the lock is held, so two sessions asking for the same
    analysis at once compute it once.
    """
    hit = results().get(key)
    if hit is not None:
        return hit
    with using_model(model) as m:
        return cached(key, lambda: compute(m))


@st.cache_resource(show_spinner="Reading the held-out digits…")
def heldout_split() -> Any:
    """The held-out split (``model_zoo.Split``), read once per process."""
    import model_zoo

    return model_zoo.load_split()


def sample_pixels(index: int) -> np.ndarray:
    """Held-out image ``index`` as (28, 28) float32 in [0, 1] (read-only)."""
    pixels = heldout_split().x_heldout[index].astype(np.float32) / 255.0  # (28, 28)
    pixels.flags.writeable = False
    return pixels


@st.cache_resource(show_spinner="Counting parameters…")
def parameter_count(name: str) -> int:
    """Number of parameters of a zoo model, from its card or by building it (no weights read)."""
    import model_zoo

    spec = model_zoo.get_spec(name)
    counted = spec.card.get("parameters")
    if counted:
        return int(counted)
    return int(sum(p.numel() for p in model_zoo.build(spec).parameters()))


# --------------------------------------------------------------------------- start-up warm-up

WARM_MODELS = ("vit-dot",)  # the default model of the Attribution page (and of Home's gallery)
WARM_LATER = ("vae-16d", "vae-2d")  # loaded after that: the Latent space page's models (small, fast to load)
WARM_ENV = "ZOOSCOPE_WARMUP"  # "0" turns the warm-up off
_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None
warm_seconds: dict[str, float] = {}  # what the warm-up did and how long each step took (for the log and tests)


def warm_up(models: tuple[str, ...] = WARM_MODELS, *, wait: bool = False) -> threading.Thread | None:
    """Start, once per process, a background thread that makes the first real view fast.

    It imports what the first script run would import (torch, captum through ``analyzers``, altair,
    pandas), reads the held-out digits, loads ``models`` through the same process-wide caches the
    pages use, runs one small Integrated Gradients call per model (captum and autograd pay their
    first-call costs there, under the model's lock like any analysis) and validates one chart.
    Everything goes through :func:`loaded_model` / :func:`run_analysis`, so a page that asks for
    the same model meanwhile waits for the one load rather than loading it twice. Failures are
    logged and ignored: the pages load and report on their own.
    """
    import os

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
    import logging
    import time

    log = logging.getLogger(__name__)

    def step(name: str, work: Callable[[], Any]) -> None:
        start = time.perf_counter()
        try:
            work()
        except Exception:  # noqa: BLE001 - a warm-up never takes the server down; the page will say what is wrong
            log.warning("warm-up step %s failed", name, exc_info=True)
        warm_seconds[name] = time.perf_counter() - start

    def imports() -> None:
        import torch  # noqa: F401
        import analyzers  # noqa: F401  (captum, matplotlib through it)
        from app import charts, compute, views  # noqa: F401  (altair, pandas)

    def chart() -> None:
        from app import charts

        zeros = np.zeros((28, 28), dtype=np.float32)
        charts.attribution_chart(zeros, zeros).to_dict()  # altair's schema validation, compiled once
        charts.scores_chart([str(i) for i in range(10)], np.zeros(10)).to_dict()

    def latent_tooltips() -> None:
        from app import latent_views

        latent_views.heldout_uris()  # the scatter's 1,000 digit pictures, made once per process

    def ig(name: str) -> None:
        from analyzers import IGParams
        from app import compute

        # A handful of steps on a blank digit: captum's and autograd's first call happen here.
        compute.run("integrated_gradients", name, IGParams(n_steps=4), np.zeros((28, 28), dtype=np.float32))

    with _no_script_context_warning():
        step("imports", imports)
        step("held-out digits", heldout_split)
        for name in models:
            step(f"load {name}", lambda name=name: loaded_model(name))
            step(f"IG {name}", lambda name=name: ig(name))
        step("charts", chart)
        for name in WARM_LATER:
            step(f"load {name}", lambda name=name: loaded_model(name))
        step("latent tooltips", latent_tooltips)
    freeze_long_lived()
    import sys

    print("zooscope: warm-up done: " + ", ".join(f"{k} {v:.2f} s" for k, v in warm_seconds.items()),
          file=sys.stderr, flush=True)


@contextmanager
def _no_script_context_warning() -> Iterator[None]:
    """Silence Streamlit's "missing ScriptRunContext" warning for cache calls from the warm-up thread."""
    import logging

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
