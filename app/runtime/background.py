"""Models that take long to load (SmolLM2: ~30-60 s on 2 cores) load on a background thread, once per process.

A page asks :func:`start` and then polls :func:`state` (elapsed seconds, done, the error message);
it never waits on the load itself, so neither its own visitor nor any other is blocked while the
weights are read. The load goes through :func:`app.runtime.models.loaded_model`, the same
process-wide cache every analysis uses: when it is done, analyses find the model loaded. No streamlit.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from app.runtime import models

_log = logging.getLogger(__name__)


@dataclass
class LoadState:
    """How a background load goes: when it started, whether it is done, and why it failed."""

    name: str
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    error: str = ""

    @property
    def done(self) -> bool:
        return self.finished is not None and not self.error

    @property
    def failed(self) -> bool:
        return bool(self.error)

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


_LOCK = threading.Lock()
_STATES: dict[str, LoadState] = {}


def needs_background(spec) -> bool:
    """True for models whose spec says they load slowly (``extra["background_load"]``)."""
    return bool(spec.extra.get("background_load"))


def start(name: str) -> LoadState:
    """Start loading model ``name`` on a daemon thread unless it is loading or loaded; its state."""
    with _LOCK:
        state = _STATES.get(name)
        if state is not None and not state.failed:
            return state
        state = _STATES[name] = LoadState(name)
    threading.Thread(target=_load, args=(state,), name=f"zooscope-load-{name}", daemon=True).start()
    return state


def state(name: str) -> LoadState | None:
    """The state of model ``name``'s background load, or None when none was started."""
    with _LOCK:
        return _STATES.get(name)


def _load(state: LoadState) -> None:
    try:
        models.loaded_model(state.name)
    except Exception as e:  # noqa: BLE001 - a failed load is said on the page, never raised on a thread
        _log.warning("loading %s failed", state.name, exc_info=True)
        state.error = " ".join(str(e).split()) or type(e).__name__
    state.finished = time.monotonic()
    if not state.error:
        print(f"zooscope: {state.name} loaded in the background in {state.seconds:.1f} s", flush=True)


def forget(name: str) -> None:
    """Drop a load's state (tests)."""
    with _LOCK:
        _STATES.pop(name, None)
