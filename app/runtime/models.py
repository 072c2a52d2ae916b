"""The models and data every session shares: loaded once per process, each instance behind its own lock.

A model is loaded on first use and shared by all sessions; an analysis holds one instance's lock
while it runs (``app.runtime.copies.using_model``), so hooks that one session's analyzer attaches
never disturb another session's numbers. No streamlit here: the command line loads through the
same functions.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

import model_zoo
from app.runtime.memo import once_per_process


@dataclass(frozen=True)
class LoadedModel:
    """A model shared by all sessions, the lock that serialises its use, and its checkpoint hash."""

    name: str
    model: Any  # torch.nn.Module in eval mode, parameters frozen
    lock: threading.RLock
    sha256: str
    device: str


def _load(name: str, device: str | None = None) -> Any:
    """model_zoo.load, with a refused user folder reported as a CheckpointError (its one-line message)."""
    try:
        return model_zoo.load(name, device)
    except model_zoo.ModelSourceError as e:
        raise model_zoo.CheckpointError(str(e)) from None


@once_per_process(32)
def _loaded(name: str) -> LoadedModel:
    model = _load(name)
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
    gc.collect()
    gc.freeze()


@once_per_process(8)
def _cpu_loaded(name: str) -> LoadedModel:
    return LoadedModel(name, _load(name, "cpu"), threading.RLock(), model_zoo.get_spec(name).sha256, "cpu")


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


@once_per_process()
def heldout_split() -> Any:
    """The held-out split (``model_zoo.Split``), read once per process."""
    return model_zoo.load_split()


def sample_pixels(index: int) -> np.ndarray:
    """Held-out image ``index`` as (28, 28) float32 in [0, 1] (read-only)."""
    pixels = heldout_split().x_heldout[index].astype(np.float32) / 255.0  # (28, 28)
    pixels.flags.writeable = False
    return pixels


@once_per_process()
def parameter_count(name: str) -> int:
    """Number of parameters of a model, from its card (user folders: counted on the meta device) or by building it."""
    spec = model_zoo.get_spec(name)
    counted = spec.card.get("parameters") or spec.extra.get("parameters")
    if counted:
        return int(counted)
    return int(sum(p.numel() for p in model_zoo.build(spec).parameters()))


# ---- the operator's own models (issue 17): serve --model PATH, ZOOSCOPE_MODELS, plugins ----------------

def register_user_models() -> None:
    """In the server process: register the operator's model folders and plugins now (checked, hashed, built on
    the meta device), so the first page is quick; refusals go to the log and the Models page, never fatal."""
    try:
        import model_zoo

        names = [n for n, s in model_zoo.all_models().items() if s.source != "zoo"]
        if names:
            print(f"zooscope: serving your models {', '.join(names)}", file=sys.stderr, flush=True)
        for where, why in model_zoo.model_problems().items():
            print(f"zooscope: refused {why if why.startswith(where) else f'{where}: {why}'}", file=sys.stderr, flush=True)
    except Exception as e:  # noqa: BLE001 - the zoo must start whatever a folder or plugin holds
        logging.getLogger(__name__).exception("registering the user's models failed")
        print(f"zooscope: the user's models could not be registered ({type(e).__name__})", file=sys.stderr)
