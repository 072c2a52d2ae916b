"""Analyses in flight: who asked for each, how heavy it is, how far it got, and how to cancel it.

Fair service between visitors rests on three rules:

- heavy analyses (``ZOOSCOPE_HEAVY_EVALUATIONS`` model evaluations or more, default 1,024) run
  one at a time on a thread of their own, so however many are asked for, the others' ordinary
  analyses share the cores with at most one of them;
- one visitor (a browser: every tab of it) has at most one heavy analysis queued or running;
  another is refused with a message that names the one running (:class:`AnalysisBusy`);
- every analysis can be cancelled by whoever asked for it: it stops at its model's next
  forward pass (:class:`AnalysisCancelled`).

While a page waits, it reads :func:`Job.status` (what the job waits for and about how long)
through a callback the page sets with :func:`watching`. No streamlit here.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from app.runtime.guards import AnalysisBusy, env_number, max_evaluations, timeout_s

HEAVY_ENV = "ZOOSCOPE_HEAVY_EVALUATIONS"
DEFAULT_HEAVY = 1024
POLL_S = 0.25  # how often a waiting page hears how its job is doing

_OWNER = contextvars.ContextVar("zooscope_job_owner", default="")
_WATCH: contextvars.ContextVar[Callable[[Job], None] | None] = contextvars.ContextVar("zooscope_job_watch",
                                                                                       default=None)
_DECLINED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("zooscope_job_declined",
                                                                           default=frozenset())


def heavy_evaluations() -> int:
    """From how many model evaluations an analysis counts as heavy (at most the budget itself)."""
    budget = max_evaluations() or DEFAULT_HEAVY * 16
    return max(1, min(int(env_number(HEAVY_ENV, DEFAULT_HEAVY)), budget))


@dataclass
class Job:
    """One analysis in flight."""

    id: int
    owner: str
    what: str
    evaluations: int
    key: str  # the result's cache key: what a cancelled job is remembered by
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    waiting_for: str = ""  # what it waits for, in words; "" once it runs
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: float | None = None  # share of the work done, for analyses that say (0..1)
    note: str = ""  # what the share counts, e.g. "3 of 10 layers"

    @property
    def heavy(self) -> bool:
        """Whether it runs on the heavy analyses' thread."""
        return self.evaluations >= heavy_evaluations()

    def cancel(self) -> None:
        """Stop it at its model's next forward pass (or before it starts)."""
        self.cancelled.set()

    def status(self) -> str:
        """What the job is doing, in words, with about how long a wait may last."""
        if self.started is not None:
            progress = f", {self.note}" if self.note else ""
            return f"{self.what}: running for {time.monotonic() - self.started:.0f} s{progress}."
        ahead = [j for j in running() if j is not self and j.started is not None and j.created < self.created]
        limit = timeout_s()
        left = [max(0.0, limit - (time.monotonic() - j.started)) for j in ahead] if limit else []
        when = f" (about {min(left):.0f} s at most)" if left else ""
        return f"{self.what}: waiting for {self.waiting_for or 'a free thread'}{when}."


_CURRENT: contextvars.ContextVar[Job | None] = contextvars.ContextVar("zooscope_job_current", default=None)


@contextmanager
def running_as(current: Job) -> Iterator[None]:
    """Within the block (on a compute thread), :func:`advance` reports on ``current``."""
    token = _CURRENT.set(current)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def advance(done: int, total: int, unit: str = "steps") -> None:
    """The running analysis has done ``done`` of ``total`` ``unit``: what a waiting page's progress bar shows."""
    current = _CURRENT.get()
    if current is not None and total > 0:
        current.done, current.note = min(1.0, done / total), f"{done} of {total} {unit}"


_jobs: dict[int, Job] = {}
_jobs_lock = threading.Lock()
_ids = itertools.count(1)


def running() -> list[Job]:
    """Every job queued or running, oldest first."""
    with _jobs_lock:
        return sorted(_jobs.values(), key=lambda j: j.created)


def mine() -> list[Job]:
    """The jobs of the visitor this code runs for (see :func:`acting_for`)."""
    owner = _OWNER.get()
    return [j for j in running() if owner and j.owner == owner]


@contextmanager
def acting_for(owner: str) -> Iterator[None]:
    """Within the block, analyses are asked for by visitor ``owner`` (a browser's id)."""
    token = _OWNER.set(owner)
    try:
        yield
    finally:
        _OWNER.reset(token)


@contextmanager
def declining(keys: frozenset[str]) -> Iterator[None]:
    """Within the block, the analyses cached under ``keys`` (ones the visitor cancelled) are not started again."""
    token = _DECLINED.set(frozenset(keys))
    try:
        yield
    finally:
        _DECLINED.reset(token)


def declined(key: str) -> bool:
    """Whether the visitor cancelled the analysis cached under ``key`` and has not asked for it again."""
    return key in _DECLINED.get()


@contextmanager
def watching(report: Callable[[Job], None]) -> Iterator[None]:
    """Within the block, a page waiting for a job calls ``report(job)`` every :data:`POLL_S` seconds."""
    token = _WATCH.set(report)
    try:
        yield
    finally:
        _WATCH.reset(token)


@contextmanager
def job(what: str, evaluations: int, key: str) -> Iterator[Job]:
    """Register an analysis for the current visitor for the block's duration.

    Raises:
        AnalysisBusy: a heavy analysis while the visitor already has one.
    """
    new = Job(next(_ids), _OWNER.get(), what, evaluations, key)
    with _jobs_lock:
        if new.heavy and new.owner:
            other = next((j for j in _jobs.values() if j.owner == new.owner and j.heavy), None)
            if other is not None:
                raise AnalysisBusy(
                    f"You already have a heavy analysis running ({other.what}); one at a time per visitor, so that "
                    f"everyone gets a share of this server. Wait for it or cancel it, then run {what} again.")
        _jobs[new.id] = new
    try:
        yield new
    finally:
        with _jobs_lock:
            _jobs.pop(new.id, None)


def wait_for(future: object, current: Job) -> object:
    """``future.result()``, telling the page's watcher how ``current`` does while it waits.

    If the wait is interrupted (the page reran: the visitor cancelled, changed a setting or
    left), the job is cancelled before the interruption goes on.
    """
    report = _WATCH.get()
    if report is None:
        return future.result()  # type: ignore[attr-defined]
    try:
        while True:
            try:
                return future.result(timeout=POLL_S)  # type: ignore[attr-defined]
            except TimeoutError:
                report(current)
    except BaseException:
        if not future.done():  # type: ignore[attr-defined]
            current.cancel()
        raise
