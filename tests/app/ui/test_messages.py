"""Messages show what people typed literally: Markdown, HTML and Streamlit's directives disarmed."""

from __future__ import annotations

from app.ui import messages


def test_messages_disarm_markdown_and_html():
    text = "[click](javascript:alert(1)) <b>x</b> :red[y] $x$ **z**"
    escaped = messages.escape(text)
    for token in ("[", "]", "(", "<", ":", "$", "*"):
        assert all(escaped[i - 1] == "\\" for i, ch in enumerate(escaped) if ch == token)
