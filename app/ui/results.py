"""Results on a page: computed under a spinner only when they really run, or read back from a share link.

An analysis that could not run shows its reason as a message, never a traceback; one that waits
or runs long says why and can be cancelled; a share link shows the saved numbers with their
provenance (when, with which versions, whether a model changed).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from app.runtime import jobs, share
from app.runtime.compute import NotCached, cache_only
from app.runtime.guards import AnalysisCancelled, AnalysisError
from app.ui import messages

XSRF_COOKIE = "_streamlit_xsrf"
SHOW_AFTER_S = 2.0  # an analysis gets its status line and Cancel button after this long
_CANCELLED = "zooscope.cancelled"  # session-state key: the cache keys of analyses this session cancelled


def with_spinner(description: str, work: Any) -> Any:
    """``work()`` (which calls ``app.runtime.compute.run``): its cached result at once, else run under a spinner.

    Only work that really runs gets a spinner (each costs a thread and two messages). While it
    waits or runs for more than a moment, the page says what it waits for and for about how long,
    with a Cancel button (:mod:`app.runtime.jobs`); the analysis is asked for by this browser.

    Raises:
        AnalysisError: the analysis could not run (the message is for people).
    """
    with jobs.acting_for(visitor()), jobs.declining(frozenset(_cancelled())):
        try:
            with cache_only():
                return work()
        except NotCached:
            pass
        holder = st.empty()
        try:
            with st.spinner(description, show_time=True), jobs.watching(_reporter(holder)):
                return work()
        finally:
            holder.empty()  # the status line and the Cancel button go with the wait


def computed(description: str, work: Any) -> Any | None:
    """:func:`with_spinner`, an analysis error shown as a message (and None returned)."""
    try:
        return with_spinner(description, work)
    except AnalysisCancelled as e:
        messages.warning(str(e))
        st.button("Run it again", key=f"run-again.{hash(description)}", on_click=_cancelled().clear,
                  icon=":material/replay:")
        return None
    except AnalysisError as e:
        messages.error(str(e))
        return None


def attempt(description: str, work: Callable[[], Any]) -> tuple[Any | None, str | None]:
    """``work()`` as :func:`with_spinner` runs it: (result, None), or (None, the reason it could not run)."""
    try:
        return with_spinner(description, work), None
    except AnalysisError as e:
        return None, str(e)


# --------------------------------------------------------------------------- waiting


def visitor() -> str:
    """Who asks for this session's analyses: the browser (every tab of it shares the XSRF cookie), else the session."""
    try:
        who = xsrf_token(st.context.cookies.get(XSRF_COOKIE) or "")
    except Exception:  # noqa: BLE001 - no cookies outside a browser (tests, bare runs): the session stands in
        who = ""
    if not who:
        ctx = get_script_run_ctx()
        who = ctx.session_id if ctx is not None else ""
    return hashlib.sha256(str(who).encode()).hexdigest()[:16] if who else ""


def xsrf_token(cookie: str) -> str:
    """The token in an XSRF cookie. Streamlit re-masks the cookie (``2|mask|token xor mask|time``) in every
    health check, so the cookie's text changes between page loads while its token stays."""
    parts = cookie.strip("\"'").split("|")
    if len(parts) == 4 and parts[0] == "2":
        try:
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
        except ValueError:
            return cookie
        if mask:
            return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked)).hex()
    return cookie


def _cancelled() -> set[str]:
    """The cache keys of the analyses this session cancelled (not started again until asked)."""
    return st.session_state.setdefault(_CANCELLED, set())


def _reporter(holder: Any) -> Callable[[jobs.Job], None]:
    """What a page waiting for a job shows in ``holder`` (an ``st.empty``) after :data:`SHOW_AFTER_S`: what it
    waits for or how far it got, and a Cancel button (drawn once; the caller empties ``holder`` when done)."""
    slots: list[Any] = []

    def report(job: jobs.Job) -> None:
        if time.monotonic() - job.created < SHOW_AFTER_S:
            return
        if not slots:
            box = holder.container()
            slots.extend((box.empty(), box.empty()))
            box.button("Cancel", key=f"cancel.{job.id}", icon=":material/cancel:", on_click=_cancelled().add,
                       args=(job.key,), help="Stop this analysis. Nothing is lost: run it again whenever you like.")
        text, bar = slots
        text.caption(messages.escape(job.status()))
        if job.done is not None:
            bar.progress(job.done, text=messages.escape(job.note))

    return report


# --------------------------------------------------------------------------- saved analyses


def saved_results(link: str | None) -> share.SavedView | None:
    """The shared analysis behind the view's link (already validated by ``binding.bind``), or None."""
    if not link:
        return None
    try:
        return share.open_link(link)
    except share.LinkProblem as e:
        messages.error(str(e))
        return None


def provenance(saved: share.SavedView) -> None:
    """Say that the view shows a saved analysis, and whether its models have changed since."""
    st.caption(messages.escape(f"Shared analysis saved {saved.created_at}; the numbers are the saved ones."))
    for name, (then, now) in saved.changed_models().items():
        messages.warning(f"The model {name} has changed since this analysis was saved (checkpoint sha256 "
                         f"{then[:12] or 'unknown'}… then, {now[:12] or 'missing'}… now). The numbers shown are the "
                         "saved ones; change any setting to recompute with the current model.")
    with st.expander("Saved with"):
        st.text("\n".join(f"{k} {v}" for k, v in saved.versions.items()))
        st.text("\n".join(f"{k} checkpoint sha256 {v}" for k, v in saved.checkpoints.items()))


def saved_view(link: str | None) -> Any | None:
    """The saved analysis behind ``link`` (``app.runtime.share.SavedView``) with its provenance shown, or None."""
    saved = saved_results(link)
    if saved is not None:
        provenance(saved)
    return saved


def results_for(link: str | None, compute: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """The saved results behind ``link`` (with their provenance), or ``compute()`` when there is none."""
    saved = saved_view(link)
    return dict(saved.results) if saved is not None else compute()
