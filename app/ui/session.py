"""Per-browser-session state, typed and kept in one place.

Pages never touch ``st.session_state`` with string keys of their own: they ask this module
for the session's :class:`SessionData` and for :class:`WidgetKeys`, which names widget keys
and seeds them from a view state (a share link, the URL, or the last view shown).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from app.runtime.share import ShareRateLimit

_SESSION_KEY = "zooscope.session"
_WIDGET_PREFIX = "zs"
MAX_UPLOADS_KEPT = 8  # decoded uploads kept per session, oldest dropped first


@dataclass
class SessionData:
    """Everything zooscope remembers for one browser session.

    Attributes:
        views: page name -> the view state last shown on that page.
        written_query: page name -> the query string this session last wrote for it, to tell
            a URL the person opened or edited from one the app wrote itself.
        uploads: sha256 -> decoded upload (``app.runtime.images.DecodedImage``), newest last.
        upload_names: sha256 -> the browser's filename, as a display label.
        shared: result cache key -> link id, so sharing the same result twice gives one link.
        share_limit: the new shares this session made in the last hour (``ZOOSCOPE_SHARES_PER_HOUR``).
        notices: page name -> problems found in the last link opened there (shown until the
            person changes the view).
        reading: pages showing the share link opened there as a report (its settings as text),
            until the person asks to change them.
    """

    views: dict[str, Any] = field(default_factory=dict)
    written_query: dict[str, str] = field(default_factory=dict)
    uploads: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    upload_names: dict[str, str] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)
    share_limit: ShareRateLimit = field(default_factory=ShareRateLimit)
    notices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reading: set[str] = field(default_factory=set)

    def remember_upload(self, sha256: str, decoded: Any, name: str) -> None:
        """Keep a decoded upload for this session (bounded; the oldest goes first)."""
        self.uploads[sha256] = decoded
        self.uploads.move_to_end(sha256)
        self.upload_names[sha256] = name
        while len(self.uploads) > MAX_UPLOADS_KEPT:
            old, _ = self.uploads.popitem(last=False)
            self.upload_names.pop(old, None)


def current() -> SessionData:
    """This browser session's data (created on first use)."""
    data = st.session_state.get(_SESSION_KEY)
    if not isinstance(data, SessionData):
        data = SessionData()
        st.session_state[_SESSION_KEY] = data
    return data


class WidgetKeys:
    """Widget keys of one page, seeded from a view state.

    ``keys.key("model", state.model)`` returns the key for the page's model widget. The key is
    set to the seed value when the widget has no value yet (first visit, or coming back from
    another page) or when ``force`` is set (a link was just opened); otherwise the person's
    current choice stands. Give ``options`` for choice widgets: a current value that is no
    longer among them is replaced by the seed (or the first option).
    """

    def __init__(self, page: str, *, force: bool = False):
        self.page = page
        self.force = force

    def name(self, name: str) -> str:
        """The session-state key of a widget, without seeding it."""
        return f"{_WIDGET_PREFIX}.{self.page}.{name}"

    def key(self, name: str, seed: Any, options: Sequence[Any] | None = None) -> str:
        """The key of widget ``name``, seeded with ``seed`` when needed (see the class doc)."""
        k = self.name(name)
        if options is not None and seed not in options:
            seed = options[0] if len(options) else None
        if self.force or k not in st.session_state:
            st.session_state[k] = seed
        elif options is not None and st.session_state[k] not in options:
            st.session_state[k] = seed
        return k

    def value(self, name: str, default: Any = None) -> Any:
        """The current value of a widget drawn earlier in this run (or ``default``)."""
        return st.session_state.get(self.name(name), default)

    def forget(self, name: str) -> None:
        """Drop a widget's value so that it is seeded again next time."""
        st.session_state.pop(self.name(name), None)
