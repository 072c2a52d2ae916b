"""Opening the app's pages in Streamlit's AppTest, shared by the page tests."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

MAIN = Path(__file__).resolve().parents[2] / "app" / "main.py"
TIMEOUT = 240  # seconds per script run: the first run of a model loads it and computes on CPU


def open_page(page: str, query: dict[str, str] | None = None) -> AppTest:
    """A fresh browser session that opens ``page`` with the URL query ``query``."""
    at = AppTest.from_file(str(MAIN), default_timeout=TIMEOUT)
    at.run()  # the entry point registers the pages
    at.query_params = dict(query or {})
    if page != "home":
        at.switch_page(f"../pages/{page}.py")
    return at.run()


def numbers(at: AppTest) -> dict[str, str]:
    """Every metric on the page, label -> displayed value."""
    return {m.label: m.value for m in at.metric}


def errors(at: AppTest) -> list[str]:
    """The error boxes' text as people read it (messages escape Markdown with backslashes)."""
    return [e.value.replace("\\", "") for e in at.error]


SUMMARY_HEADING = "Settings of this shared analysis"


def settings_summary(at: AppTest) -> str | None:
    """The settings a shared view lists instead of its controls, as people read them (or None)."""
    for m in at.markdown:
        text = m.value.replace("\\", "")
        if text.startswith(f"**{SUMMARY_HEADING}**"):
            return text
    return None


def change_settings(at: AppTest) -> AppTest:
    """Click "Change settings" on a shared view and return the page after that run."""
    next(b for b in at.button if b.label == "Change settings").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def bar_png() -> bytes:
    """An 80 x 80 PNG of a white bar on black: a valid upload that reads like a "1"."""
    import io

    import numpy as np
    from PIL import Image

    img = np.zeros((80, 80), dtype=np.uint8)
    img[10:70, 35:45] = 255
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()
