"""A real browser against ``zooscope serve --model <tiny GPT-2 folder>``: the Generation page end to end.

Types a text, generates, sees the attribution matrix and the completeness table (every row adds up:
sum of attributions = F(text) - F(baseline)), shares, and opens the link in a fresh browser context
(no cookies, no session) with identical numbers. The folder is built from a config (never downloaded).
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import hf_fixtures as fx
from tests.app import serving
from tests.app.test_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    _new_page,
    _no_exception,
    _require_chromium,
    _settle,
)

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore")]
TEXT = "the film was a delight"
NEW_TOKENS = 4
COLUMNS = ["step", "token", "F(text)", "F(baseline)", "sum of attributions", "delta", "relative error"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``zooscope serve --port P --model <tiny-gpt2>`` with its own ZOOSCOPE_HOME; stopped by its PID."""
    _require_chromium()
    folder = fx.tiny_gpt2_folder(tmp_path_factory.mktemp("generative"))
    home = tmp_path_factory.mktemp("zooscope-home")
    port = serving.free_port()
    log = home / f"server-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--model", str(folder)],
                                cwd=serving.ROOT, env={**os.environ, "ZOOSCOPE_HOME": str(home)}, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        serving.wait_healthy(url, proc, log)
        yield url
    finally:
        serving.stop(proc)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _completeness(page) -> list[list[str]]:
    """The completeness table's rows (opened from its expander), read from the data grid's accessible cells."""
    box = page.locator("[data-testid='stExpander']", has_text="Completeness per generated token").first
    if box.locator("[role='gridcell']").count() == 0:
        box.get_by_text("Completeness per generated token").first.click()
        _settle(page, quiet_s=0.5)
    cells = box.locator("[role='gridcell']")
    cells.first.wait_for(state="attached")  # the grid draws on a canvas; its accessible table is hidden
    texts = [cells.nth(i).text_content().strip() for i in range(cells.count())]
    assert len(texts) % len(COLUMNS) == 0, texts
    return [texts[i:i + len(COLUMNS)] for i in range(0, len(texts), len(COLUMNS))]


def _shown(page) -> dict[str, object]:
    """What the page says: the continuation line, the matrix title, the completeness rows and the contrast metrics."""
    _no_exception(page)
    page.get_by_role("heading", name="Attribution of every generated token").first.wait_for()
    assert page.locator("[data-testid='stVegaLiteChart']").count() >= 3  # the matrix, the contrast, attention
    page.get_by_text("worst relative error", exact=False).first.wait_for()
    continuation = page.get_by_text("tiny-gpt2 continues:", exact=False).first.inner_text().strip()
    metrics = page.locator("[data-testid='stMetricValue']").all_inner_texts()
    return {"continuation": continuation, "rows": _completeness(page), "metrics": metrics}


def _share(page, server: str) -> str:
    page.get_by_role("button", name="Share").click()
    code = page.locator(".st-key-share-link a", has_text="?id=").first
    code.wait_for()
    link = code.inner_text().strip()
    assert link.startswith(f"{server}/generation?id="), link
    return link


def test_a_typed_text_is_generated_attributed_shared_and_reopened_with_identical_numbers(server, browser):
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/generation?model=tiny-gpt2&max_new_tokens={NEW_TOKENS}")
        _settle(page)
        box = page.get_by_role("textbox", name="Text")
        box.fill(TEXT)
        box.press("Control+Enter")
        _settle(page)
        assert "text=the+film+was+a+delight" in page.url and "model=tiny-gpt2" in page.url
        shown = _shown(page)
        assert shown["continuation"].startswith(f"tiny-gpt2 continues: {TEXT}"), shown
        rows = shown["rows"]
        assert [int(r[0]) for r in rows] == list(range(1, NEW_TOKENS + 1)), rows
        for row in rows:  # completeness holds on GPT-2 (LayerNorm after the embeddings, no attention sink)
            f_x, f_b, total, rel = (float(row[COLUMNS.index(c)]) for c in
                                    ("F(text)", "F(baseline)", "sum of attributions", "relative error"))
            assert f_x <= 0 and f_b <= 0  # log-probabilities
            assert abs(total - (f_x - f_b)) < 2e-3 and rel < 0.05, row
        assert len(shown["metrics"]) == 3 and shown["metrics"][0].endswith("%"), shown["metrics"]
        page.screenshot(path=str(ARTIFACTS / "generation-tiny-gpt2.png"), full_page=True)
        link = _share(page, server)
    finally:
        context.close()

    fresh, page = _new_page(browser)  # no cookies, no session: only the link
    try:
        page.goto(link)
        _settle(page)
        page.get_by_text("the numbers are the saved ones").first.wait_for()
        reopened = _shown(page)
        page.screenshot(path=str(ARTIFACTS / "generation-tiny-gpt2-reopened.png"), full_page=True)
    finally:
        fresh.close()
    assert reopened == shown
