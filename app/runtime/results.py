"""Results cached under zooscope's own keys: sha256 of the input, the model's checkpoint, the analysis and its params.

Streamlit never hashes an array: the key is made here, and a retrained model (another
checkpoint sha256) never serves a stale result.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from app.runtime.memo import once_per_process

R = TypeVar("R")

MAX_RESULTS = 256  # results kept per process, least recently used dropped first


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

    def clear(self) -> None:
        """Forget every result (the next request computes afresh)."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


@once_per_process()
def results() -> ResultCache:
    """The process-wide result cache."""
    return ResultCache()


def array_sha256(array: np.ndarray) -> str:
    """sha256 over an array's dtype, shape and bytes: the identity of an input."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def input_sha256(inputs: np.ndarray | Sequence[Any] | None) -> str:
    """The identity of an input: sha256 of an image array's bytes, or of texts as JSON."""
    if inputs is None:
        return "none"
    if isinstance(inputs, np.ndarray):
        return array_sha256(inputs)
    text = json.dumps([list(t) if isinstance(t, tuple) else t for t in inputs], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def result_key(*, input_sha256: str, spec: Any, analysis: str, params: Mapping[str, str],
               extra: Mapping[str, Any] | None = None) -> str:
    """Our cache key: sha256 of the canonical JSON of input hash, model (``spec``, a ModelSpec), analysis and params.

    ``params`` must be canonical (``analyzers.params_to_mapping``), so equal params give equal
    keys however they were entered. The checkpoint's sha256 is included, so a retrained model
    never serves stale results.
    """
    payload = {"input": input_sha256, "model": spec.name, "checkpoint": spec.sha256,
               "analysis": analysis, "params": dict(params), "extra": dict(extra or {})}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
