"""The Routing page in a real browser against a real server: every panel draws, a setting reruns it,
the results download, and a share link reopens the same numbers in a new browser context.

Drives Debian's chromium through Playwright, like ``test_browser.py`` (whose helpers it uses).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from app.links import catalogue
from tests.app import serving
from tests.app.test_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    _choose,
    _download,
    _metrics,
    _new_page,
    _no_exception,
    _require_chromium,
    _settle,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_chromium()
    if not catalogue.has_weights("vit-moe"):
        pytest.skip("no checkpoint for vit-moe yet: run `zooscope train vit-moe`")
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


def test_routing_page_draws_changes_downloads_and_shares(server, browser):
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/routing?model=vit-moe&sample=17&ig.n_steps=32")
        _settle(page)
        page.get_by_role("heading", name="Routing", exact=True).first.wait_for()
        _no_exception(page)
        for heading in ("Routing per layer", "Expert load over the held-out set", "What each expert responds to",
                        "Attribution through the router", "Ablate an expert"):
            page.get_by_role("heading", name=heading).first.wait_for()
        page.locator("[data-testid='stVegaLiteChart']").nth(6).wait_for()  # 2 maps, 2 load bars, class load, IG, ablation
        _settle(page)
        shown = _metrics(page)
        assert float(shown["Held-out accuracy"].rstrip("%")) >= 93 and "Without expert 0" in shown
        page.screenshot(path=str(ARTIFACTS / "routing.png"), full_page=True)

        _choose(page, "Expert removed", "expert 3")
        page.get_by_text("Without expert 3").first.wait_for()
        _settle(page)
        _no_exception(page)
        assert "ablate=3" in page.url
        shown = _metrics(page)

        _, npz = _download(page, "Download results", "NPZ (all arrays)")
        arrays = np.load(io.BytesIO(npz))
        assert arrays["routing__gates"].shape == (1, 2, 50, 8)
        _, record = _download(page, "Download results", "JSON")
        assert json.loads(record)["routing"]["summary"]["k"] == 2

        page.get_by_role("button", name="Share").click()
        code = page.locator(".st-key-share-link a", has_text="?id=").first
        code.wait_for()
        link = code.inner_text().strip()
        assert link.startswith(server + "/routing?id=")
        _settle(page)
    finally:
        context.close()

    fresh, page = _new_page(browser)  # a new browser context: no cookies, no session
    try:
        page.goto(link)
        _settle(page)
        page.get_by_text("the numbers are the saved ones").first.wait_for()
        page.locator("[data-testid='stVegaLiteChart']").nth(6).wait_for()
        page.get_by_text("Without expert 3").first.wait_for()
        _settle(page)
        _no_exception(page)
        assert _metrics(page) == shown
        assert "Expert removed expert 3" in page.get_by_text("Settings of this shared analysis").first.locator(
            "xpath=ancestor::*[@data-testid='stMarkdown'][1]").inner_text().replace("\n", " ")
        page.screenshot(path=str(ARTIFACTS / "routing-reopened.png"), full_page=True)
    finally:
        fresh.close()
