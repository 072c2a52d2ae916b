"""Binding a page's view to the browser: the URL it was opened with, the session's last view, and the URL it writes.

A page is::

    bound = binding.bind(AttributionView)     # the view to seed widgets from, and link problems
    ... draw widgets seeded from bound.view with WidgetKeys(PAGE, force=bound.opened) ...
    view = binding.settle(bound, AttributionView(...))   # keeps the link while nothing changed
    binding.publish(view)                     # the URL now reproduces what is on screen
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Generic

import streamlit as st

from app import navigation
from app.links.codec import V, View, signature, without_link
from app.runtime import share
from app.ui import session


@dataclass(frozen=True)
class Bound(Generic[V]):
    """What :func:`bind` found: the view to seed widgets from, whether a link was just opened,
    and the problems of that link (kept until the person changes the view)."""

    view: V
    opened: bool
    problems: tuple[str, ...]


def read_query() -> dict[str, list[str]]:
    """The current URL's query parameters, every value of every key."""
    return {k: st.query_params.get_all(k) for k in st.query_params.keys()}


def bind(view_cls: type[V]) -> Bound[V]:
    """The view this run starts from.

    A URL the person opened or edited (different from what this session last wrote for the
    page) is parsed and wins: ``opened`` is True and widgets are re-seeded. Otherwise the
    session's last view of the page is used (or the defaults), so leaving a page and coming
    back keeps it as it was.
    """
    data = session.current()
    page = view_cls.PAGE
    query = read_query()
    if query and signature(query) != data.written_query.get(page):
        view, problems = view_cls.from_query(query, data.uploads)
        if view.link:
            view, problems = _open_saved(view_cls, view.link, problems)
        data.views[page] = view
        data.notices[page] = problems
        data.written_query[page] = signature(query)
        if view.link:  # a share link opens as a report: its settings as text until the person asks to change them
            data.reading.add(page)
        else:
            data.reading.discard(page)
        return Bound(view, True, problems)
    view = data.views.get(page)
    if not isinstance(view, view_cls):
        view = view_cls()
    return Bound(view, False, data.notices.get(page, ()))


def _open_saved(view_cls: type[V], link: str, problems: tuple[str, ...]) -> tuple[V, tuple[str, ...]]:
    """The saved view behind ``link`` (switching to the page that shows it), or the defaults."""
    try:
        saved = share.open_link(link)
    except share.LinkProblem as e:
        return view_cls(), (*problems, str(e))
    if saved.page != view_cls.PAGE:
        target = navigation.page_file(saved.page)
        if target is None:
            return view_cls(), (*problems, f"This link was saved on the {saved.page!r} page, which this "
                                           "zooscope does not have.")
        st.switch_page(str(target), query_params={"id": link})
    share.restore_inputs(saved, session.current())
    view, more = view_cls.from_query(saved.view, session.current().uploads)
    return dataclasses.replace(view, link=link), (*problems, *more)


def settle(bound: Bound[V], view: V) -> V:
    """The view built from the widgets, keeping the bound view's link while nothing else changed."""
    if bound.view.link and without_link(view) == without_link(bound.view):
        return dataclasses.replace(view, link=bound.view.link)
    return view


def publish(view: View) -> None:
    """Make the URL reproduce ``view`` and remember it as this page's current view."""
    data = session.current()
    page = view.PAGE
    if data.views.get(page) != view:
        data.notices.pop(page, None)  # the person moved on from the link they opened
    data.views[page] = view
    query = view.to_query()
    if signature(query) != signature(read_query()):
        st.query_params.from_dict(query)
    data.written_query[page] = signature(query)
