"""Messages for people, shown literally: never interpreted as Markdown, HTML or icons.

Streamlit renders the body of ``st.error``/``st.warning``/``st.info`` as Markdown. Messages
here can quote what a person typed or a link carried, so every ASCII punctuation character is
backslash-escaped (CommonMark allows that for all of them), which also defuses Streamlit's
``:icon:`` / ``:color[...]`` directives and ``$`` maths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import streamlit as st

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def escape(text: str) -> str:
    """``text`` with Markdown disarmed: it displays exactly as written."""
    return _PUNCTUATION.sub(r"\\\1", str(text))


def error(text: str) -> None:
    """An error box showing ``text`` literally."""
    st.error(escape(text), icon=":material/error:")


def warning(text: str) -> None:
    """A warning box showing ``text`` literally."""
    st.warning(escape(text), icon=":material/warning:")


def info(text: str) -> None:
    """An information box showing ``text`` literally."""
    st.info(escape(text), icon=":material/info:")


def link_problems(problems: Iterable[str]) -> None:
    """One error box listing what was wrong with the link that opened this page."""
    problems = list(problems)
    if problems:
        error("This link has problems; the page shows what it could:\n\n" + "\n\n".join(f"• {p}" for p in problems))
