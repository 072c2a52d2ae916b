"""Process-wide memoisation without streamlit: one value per key, computed once even when asked at once.

The runtime is shared by the web app and the command line, so it cannot lean on
``st.cache_resource``; this is the part of it the runtime needs. Each key has its own lock, so
two sessions asking for the same model wait for one load, while other models load beside it.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def once_per_process(max_entries: int | None = None) -> Callable[[F], F]:
    """Decorate a function of hashable arguments: each call's value is made once and kept
    (the least recently used dropped past ``max_entries``). ``fn.clear()`` forgets them all."""
    def decorate(fn: F) -> F:
        values: OrderedDict[Hashable, Any] = OrderedDict()
        locks: dict[Hashable, threading.Lock] = {}
        guard = threading.Lock()

        @functools.wraps(fn)
        def memoised(*args: Any) -> Any:
            with guard:
                if args in values:
                    values.move_to_end(args)
                    return values[args]
                lock = locks.setdefault(args, threading.Lock())
            with lock:  # one computation per key; a caller that waited finds the value
                with guard:
                    if args in values:
                        return values[args]
                value = fn(*args)
                with guard:
                    values[args] = value
                    locks.pop(args, None)
                    while max_entries is not None and len(values) > max_entries:
                        values.popitem(last=False)
                return value

        memoised.clear = lambda: values.clear()  # type: ignore[attr-defined]
        return memoised  # type: ignore[return-value]

    return decorate
