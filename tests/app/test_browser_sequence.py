"""A real browser on the Sequence page: a word in, phones out, another word typed, shared and reopened.

Drives Debian's chromium through Playwright (skips without it outside CI, as tests/app/test_browser.py).
"""

from __future__ import annotations

import re

import pytest

from tests.app import serving
from tests.app.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _new_page, _no_exception, _require_chromium, \
    _settle

pytestmark = pytest.mark.browser

URL = "/sequence?model=g2p-monotonic&word=phoenix&attribution=occlusion"
SAYS = re.compile(r"g2p-monotonic says /([A-Z ]+)/ for (\w+)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_chromium()
    proc, url, log = serving.start(tmp_path_factory.mktemp("zooscope-home"))
    try:
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


def said(page) -> tuple[str, str]:
    text = page.locator("[data-testid='stMain']").inner_text()
    found = SAYS.search(text)
    assert found, text[:2000]
    return found.group(1), found.group(2)


def test_a_word_decodes_a_new_word_decodes_and_a_share_link_reopens_it(server, browser):
    context, page = _new_page(browser)
    try:
        page.goto(server + URL)
        _settle(page)
        page.get_by_role("heading", name="Sequence", exact=True).first.wait_for()
        _no_exception(page)
        phones, word = said(page)
        assert word == "phoenix" and phones.split()[0] == "F"
        assert page.get_by_text("Hard alignment (test time)").count() + page.locator(
            "[data-testid='stVegaLiteChart']").count() >= 3  # expected + hard + step + attribution charts
        box = page.get_by_role("textbox", name="Word")
        box.fill("zooscope")  # not in the dictionary
        box.press("Enter")
        _settle(page)
        phones, word = said(page)
        assert word == "zooscope" and phones.split()[0] == "Z"
        assert "word=zooscope" in page.url
        page.screenshot(path=str(ARTIFACTS / "sequence-zooscope.png"), full_page=True)

        page.get_by_role("button", name="Share").click()
        code = page.locator(".st-key-share-link a", has_text="?id=").first
        code.wait_for()
        link = code.inner_text().strip()
        assert link.startswith(server + "/sequence?id=")
    finally:
        context.close()

    fresh, page = _new_page(browser)
    try:
        page.goto(link)
        _settle(page)
        _no_exception(page)
        assert said(page) == (phones, "zooscope")
        page.get_by_text("Settings of this shared analysis").first.wait_for()
    finally:
        fresh.close()


def test_a_word_the_models_cannot_read_is_one_clear_message(server, browser):
    context, page = _new_page(browser)
    try:
        page.goto(server + "/sequence?model=g2p-soft&word=h3llo&attribution=occlusion")
        _settle(page)
        _no_exception(page)
        assert page.get_by_text("cannot read").count() >= 1
    finally:
        context.close()
