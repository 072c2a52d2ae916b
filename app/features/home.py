"""The Home page: what zooscope is, a gallery of curated analyses, this browser's shares, and the published ones.

Shares are private: Home lists a share only to the browser that made it, and to everyone once
that browser publishes it (when the server has a gallery, ``ZOOSCOPE_GALLERY``).

Link: ``/?id=<link id>`` opens a shared analysis on the page it was saved on.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import streamlit as st

from app import navigation
from app.links.codec import Query, QueryReader
from app.runtime import share
from app.runtime.models import sample_pixels
from app.ui import messages
from app.ui.pickers import thumbnail
from app.ui.results import visitor


# --------------------------------------------------------------------------- link


@dataclass(frozen=True)
class LinkView:
    """A page that only opens shared links (Home): ``?id=<link id>``."""

    PAGE: ClassVar[str] = "home"

    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[LinkView, tuple[str, ...]]:
        r = QueryReader(query)
        return cls(r.link_id()), r.finish()

    def to_query(self) -> dict[str, str]:
        return {"id": self.link} if self.link else {}


# --------------------------------------------------------------------------- gallery


@dataclass(frozen=True)
class Curated:
    """A curated analysis on the Home page: a title, the page and its URL parameters, a thumbnail digit."""

    title: str
    page: str
    query: Mapping[str, str]
    sample: int


def gallery(items: Sequence[Curated], per_row: int = 4) -> None:
    """Thumbnails with one-click links that open each curated view through its URL parameters."""
    shown = [c for c in items if navigation.page_info(c.page) is not None]
    for start in range(0, len(shown), per_row):
        cols = st.columns(per_row)
        for col, item in zip(cols, shown[start:start + per_row]):
            with col.container(border=True):
                st.image(thumbnail(sample_pixels(item.sample), 3), width=84)
                st.markdown(f"**{messages.escape(item.title)}**")
                st.page_link(str(navigation.page_file(item.page)), label="Open", query_params=dict(item.query),
                             icon=":material/open_in_new:")


def your_shares(limit: int = 8) -> None:
    """The analyses this browser shared, newest first, each a link (marked when published)."""
    rows, problem = share.shared_by_checked(visitor(), limit)
    if problem:  # the store is down or misconfigured: say so, rather than "nothing shared"
        messages.warning(f"Your shares cannot be listed right now. {problem}")
        return
    if not rows:
        st.caption("Nothing shared from this browser yet. Use the Share button on any analysis; only you see "
                   "your shares here, unless you publish them.")
        return
    _share_links(rows, mark_published=share.gallery_on())


def has_gallery() -> bool:
    """Whether this server lists published shares on Home (``ZOOSCOPE_GALLERY``, default 1; 0: no gallery)."""
    return share.gallery_on()


def published_shares(limit: int = 8) -> None:
    """The analyses visitors published to the gallery, newest published first, each a link (none when it is off)."""
    rows = share.published(limit)
    if not rows:
        st.caption("Nothing published yet. After you share an analysis, “Publish to the gallery” lists it here "
                   "for everyone.")
    _share_links(rows, mark_published=False)


def _share_links(rows: Sequence[Any], *, mark_published: bool) -> None:
    """One link per saved analysis (``app.runtime.store.SavedSummary``): its title and when it was shared."""
    for row in rows:
        target = navigation.page_file(row.kind)
        if target is None:
            continue
        published = mark_published and row.published_at is not None
        label = f"{row.title or row.kind} · {row.created_at:%Y-%m-%d %H:%M}" + (" · published" if published else "")
        st.page_link(str(target), label=messages.escape(label), query_params={"id": row.id},
                     icon=":material/public:" if published else ":material/link:")
