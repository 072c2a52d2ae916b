"""Copies of a model, so that one visitor's long analysis does not hold the model for everyone else.

An analysis holds a model exclusively while it runs (its hooks must never disturb another
session's numbers). With one shared instance, analyses of one model queued behind each other,
and the heaviest allowed job held the queue for a minute. Here each model has up to
``ZOOSCOPE_MODEL_COPIES`` instances (default 2), loaded from the same checkpoint (so every copy
gives identical numbers), the second one only when the first is busy. An analysis takes any
free copy, or a new one while fewer exist than allowed, or waits for the first one released.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import model_zoo
from app.runtime.guards import env_number
from app.runtime.memo import once_per_process
from app.runtime.models import LoadedModel, freeze_long_lived, loaded_model

COPIES_ENV = "ZOOSCOPE_MODEL_COPIES"
DEFAULT_COPIES = 2


def copies_allowed() -> int:
    """How many instances of one model may exist (``ZOOSCOPE_MODEL_COPIES``, default 2, at least 1)."""
    return max(1, int(env_number(COPIES_ENV, DEFAULT_COPIES)))


class Copies:
    """The loaded instances of one model: every one, the free ones, and a condition to wait on."""

    def __init__(self, first: LoadedModel):
        self.name = first.name
        self.every: list[LoadedModel] = [first]
        self.free: list[LoadedModel] = [first]
        self.loading = 0
        self.changed = threading.Condition()

    def take(self, waiting: Callable[[], None] | None = None) -> LoadedModel:
        """A free instance (loading another while fewer than allowed exist); ``waiting()`` is called before waiting."""
        with self.changed:
            while not self.free and len(self.every) + self.loading >= copies_allowed():
                if waiting is not None:
                    waiting()
                    waiting = None
                self.changed.wait()
            if self.free:  # the first loaded of the free ones: the others only serve when it is busy
                entry = min(self.free, key=self.every.index)
                self.free.remove(entry)
                return entry
            self.loading += 1
        try:
            entry = _load_copy(self.name)
        finally:
            with self.changed:
                self.loading -= 1
        with self.changed:
            self.every.append(entry)
        return entry

    def give_back(self, entry: LoadedModel) -> None:
        """Return an instance taken with :meth:`take`; one analysis waiting for it goes on."""
        with self.changed:
            self.free.append(entry)
            self.changed.notify()

    def busy(self) -> int:
        """How many instances are running an analysis now."""
        with self.changed:
            return len(self.every) - len(self.free)


@once_per_process()
def copies_of(name: str) -> Copies:
    """The instances of model ``name`` (the first is :func:`app.runtime.models.loaded_model`'s)."""
    return Copies(loaded_model(name))


def _load_copy(name: str) -> LoadedModel:
    first = loaded_model(name)
    entry = LoadedModel(name, model_zoo.load(name), threading.RLock(), first.sha256, first.device)
    freeze_long_lived()
    return entry


@contextmanager
def using_model(name: str, waiting: Callable[[], None] | None = None) -> Iterator[Any]:
    """Hold one instance of model ``name`` exclusively for the block and yield it.

    ``waiting()`` is called once if every instance is busy and no other may be loaded (so the
    caller can say why it waits).
    """
    copies = copies_of(name)
    entry = copies.take(waiting)
    try:
        with entry.lock:
            yield entry.model
    finally:
        copies.give_back(entry)
