"""The settings column of a page: its controls, or, for a share link as opened, every setting listed as text.

A shared analysis opens as a report of what was analysed, every setting included (those under
collapsed sections too), before anything invites the person to change it; "Change settings"
brings the controls back, set to the link's values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import streamlit as st

from app.ui import messages, session


@contextlib.contextmanager
def settings(place: Any, keys: session.WidgetKeys) -> Iterator[Any]:
    """A page's settings, drawn in ``place``: yields where the settings code puts its widgets.

    Normally that is ``st`` (inside ``place``), and the controls are drawn. While the page shows a
    share link as it was opened, it is a :class:`SettingsSummary`: the same code runs and
    reads the link's values, and ``place`` shows them as text with a "Change settings" button
    that brings the controls back, set to those values. A person who opens a link sees what was
    analysed, every setting included, before anything invites them to change it (and the page
    does not draw a dozen controls they did not ask for).
    """
    with place:
        if keys.page not in session.current().reading:
            yield st
            return
        summary = SettingsSummary()
        yield summary
        st.markdown(f"**Settings of this shared analysis**  \n{summary.markdown()}")
        for args, kwargs in summary.images:
            st.image(*args, **kwargs)
        st.button("Change settings", key=keys.name("change-settings"), icon=":material/tune:",
                  on_click=_stop_reading, args=(keys.page,),
                  help="Show the controls, set to these values. The saved numbers stay until a setting changes.")


def _stop_reading(page: str) -> None:
    session.current().reading.discard(page)


class SettingsSummary:
    """Stands in for ``st`` in a page's settings code while the page shows a share link as opened.

    The settings code runs unchanged, but no widget is drawn: each widget call returns the value
    its key holds (``WidgetKeys`` seeded it from the link) and notes the label and the value as
    the widget would show it. The page then shows the notes as text (see ``views.settings``): a
    shared analysis opens as a report of every setting it was made with, those in collapsed
    sections included, and draws the controls only when the person asks to change something.
    Only the calls settings code makes are here; anything else is an AttributeError, not a
    silently missing widget.
    """

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.images: list[tuple[tuple[Any, ...], dict[str, Any]]] = []  # st.image calls, to make after the text

    def note(self, label: str, shown: Any) -> None:
        """Add a line "label: shown" (no label: the text alone)."""
        self.lines.append((str(label), " ".join(str(shown).split())))

    def _choice(self, label: str, key: str | None, format_func: Any, default: Any) -> Any:
        value = st.session_state[key] if key is not None and key in st.session_state else default
        self.note(label, format_func(value))
        return value

    def selectbox(self, label: str, options: Sequence[Any], index: int = 0, format_func: Any = str, *,
                  key: str | None = None, **_: Any) -> Any:
        return self._choice(label, key, format_func, list(options)[index] if len(options) else None)

    radio = selectbox  # same arguments, same reading

    def select_slider(self, label: str, options: Sequence[Any] = (), value: Any = None, format_func: Any = str, *,
                      key: str | None = None, **_: Any) -> Any:
        return self._choice(label, key, format_func, value if value is not None else list(options)[0])

    def number_input(self, label: str, min_value: Any = None, max_value: Any = None, value: Any = None, *,
                     format: str | None = None, key: str | None = None, **_: Any) -> Any:
        shown = (lambda v: format % v) if format else str
        return self._choice(label, key, shown, value if value is not None else min_value)

    def checkbox(self, label: str, value: bool = False, *, key: str | None = None, **_: Any) -> bool:
        return bool(self._choice(label, key, lambda v: "yes" if v else "no", value))

    toggle = checkbox  # an on/off switch reads the same as a checkbox in the summary

    def text_input(self, label: str, value: str = "", *, key: str | None = None, **_: Any) -> str:
        return self._choice(label, key, str, value)

    text_area = text_input

    def file_uploader(self, *_: Any, **__: Any) -> None:
        return None  # nothing new is uploaded while reading; the link's own upload is restored

    def expander(self, *_: Any, **__: Any) -> SettingsSummary:
        return self  # a collapsed section's settings are listed with the rest

    def columns(self, spec: int | Sequence[float], **_: Any) -> list[SettingsSummary]:
        return [self] * (spec if isinstance(spec, int) else len(spec))

    def text(self, body: Any, **_: Any) -> None:
        self.note("", body)

    def image(self, *args: Any, **kwargs: Any) -> None:
        self.images.append((args, kwargs))  # the input, drawn under the settings

    def caption(self, *_: Any, **__: Any) -> None:
        return None  # notes about the controls ("Nothing uploaded yet"), not settings

    def __enter__(self) -> SettingsSummary:
        return self

    def __exit__(self, *_: Any) -> None:
        return None

    def markdown(self) -> str:
        """The notes as Markdown lines, every label and value shown literally."""
        return "  \n".join(f"**{messages.escape(label)}** {messages.escape(shown)}" if label
                           else messages.escape(shown) for label, shown in self.lines)
