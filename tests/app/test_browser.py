"""A real browser against a real server: every page opens, an upload is analysed, a share link reopens.

Drives Debian's chromium through Playwright (never ``playwright install``). Without
/usr/bin/chromium these tests skip with the reason outside CI and fail in CI (CI=true).
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest

from app import navigation
from tests.app import serving

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_MS = 120_000


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run browser tests"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set, so a missing browser is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``zooscope serve`` on a free port with its own ZOOSCOPE_HOME; yields the base URL."""
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


def _new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    context.set_default_timeout(RUN_TIMEOUT_MS)
    return context, context.new_page()


def _settle(page, quiet_s: float = 1.0) -> None:
    """Wait until the script run is over: the app is there and no run indicator shows for a while."""
    page.wait_for_selector("[data-testid='stApp']")
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    calm_since = None
    while time.monotonic() < deadline:
        running = page.locator("[data-testid='stStatusWidget'], [data-testid='stSpinner']").count() > 0
        if running:
            calm_since = None
        elif calm_since is None:
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= quiet_s:
            return
        time.sleep(0.2)
    raise AssertionError("the page kept running")


def _metrics(page) -> dict[str, str]:
    cards = page.locator("[data-testid='stMetric']")
    return {cards.nth(i).locator("[data-testid='stMetricLabel']").inner_text().strip():
            cards.nth(i).locator("[data-testid='stMetricValue']").inner_text().strip()
            for i in range(cards.count())}


def _no_exception(page) -> None:
    shown = page.locator("[data-testid='stException']")
    assert shown.count() == 0, f"{page.url} shows an exception: {shown.first.inner_text()[:2000]}"


def _digit_png() -> bytes:
    """A held-out 3, drawn dark on light at 4x: the app must invert, crop and centre it."""
    from PIL import Image

    from model_zoo import load_split

    split = load_split()
    idx = int(np.flatnonzero(split.y_heldout == 3)[0])
    image = Image.fromarray(255 - split.x_heldout[idx]).resize((112, 112), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_every_page_opens_without_a_traceback(server, browser):
    context, page = _new_page(browser)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    try:
        for info in navigation.available():
            page.goto(f"{server}/{info.url_path}")
            _settle(page)
            heading = "zooscope" if info.name == "home" else info.title
            page.get_by_role("heading", name=heading, exact=True).first.wait_for()
            _no_exception(page)
            page.screenshot(path=str(ARTIFACTS / f"page-{info.name}.png"), full_page=True)
    finally:
        context.close()
    # opened at a page's URL, the app connects to its root at once (no 404 probe of <page>/_stcore/)
    assert f"{server}/_stcore/health" in asked
    assert not [url for url in asked if "/_stcore/" in url and not url.startswith(f"{server}/_stcore/")]


def test_upload_predict_share_and_reopen_in_a_new_context(server, browser, tmp_path):
    upload = tmp_path / "my digit <3>.png"
    upload.write_bytes(_digit_png())
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/attribution?model=vit-dot&method=integrated_gradients&n_steps=16")
        _settle(page)
        page.get_by_text("Upload", exact=True).click()
        _settle(page)
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(upload))
        page.get_by_text("as the model sees it (28 × 28)").first.wait_for()
        _settle(page)
        page.get_by_text("my digit <3>.png", exact=True).first.wait_for()  # the filename, shown literally
        shown = _metrics(page)
        assert shown.get("Prediction") == "3", shown
        assert "upload=" in page.url
        page.screenshot(path=str(ARTIFACTS / "attribution-upload.png"), full_page=True)

        page.get_by_role("button", name="Share").click()
        code = page.locator(".st-key-share-link a", has_text="?id=").first
        code.wait_for()
        link = code.inner_text().strip()
        assert link.startswith(server + "/attribution?id=") and len(link.split("id=")[1]) == 22
        _settle(page)
        page.screenshot(path=str(ARTIFACTS / "attribution-shared.png"), full_page=True)
    finally:
        context.close()

    fresh, page = _new_page(browser)  # a new browser context: no cookies, no session
    try:
        page.goto(link)
        _settle(page)
        page.get_by_text("the numbers are the saved ones").first.wait_for()
        _no_exception(page)
        assert _metrics(page) == shown
        summary = page.get_by_text("Settings of this shared analysis").first
        summary.wait_for()  # the link's settings as text, the controls one click away
        assert page.locator("[data-testid='stSelectbox']").count() == 0
        assert "Path steps 16" in page.locator("[data-testid='stMarkdown']", has=summary).inner_text()
        page.screenshot(path=str(ARTIFACTS / "attribution-reopened.png"), full_page=True)

        page.get_by_role("button", name="Change settings").click()
        page.get_by_text("as the model sees it (28 × 28)").first.wait_for()  # the link's upload, restored
        _settle(page)
        assert page.locator("[data-testid='stSelectbox']").count() >= 2
        assert _metrics(page) == shown, "the saved numbers stay until a setting changes"
        page.screenshot(path=str(ARTIFACTS / "attribution-reopened-settings.png"), full_page=True)
    finally:
        fresh.close()


def _download(page, menu: str, button: str, nth: int = 0) -> tuple[str, bytes]:
    """Open the ``nth`` popover labelled ``menu``, click ``button`` in it; the file's name and bytes."""
    page.get_by_role("button", name=menu, exact=True).nth(nth).click()
    item = page.get_by_role("button", name=button, exact=True)
    item.wait_for()  # the menu fills in when it opens (a rerun of the menu's fragment)
    _settle(page, quiet_s=0.5)
    with page.expect_download() as info:
        item.click()
    download = info.value
    data = Path(download.path()).read_bytes()
    page.keyboard.press("Escape")
    item.wait_for(state="hidden")
    return download.suggested_filename, data


def test_save_menus_and_result_downloads_give_the_files_they_name(server, browser):
    import json

    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/attribution?model=vit-dot&method=integrated_gradients&n_steps=16&sample=7")
        _settle(page)
        assert page.get_by_role("button", name="SVG", exact=True).count() == 0, "closed menus hold no buttons"
        name, svg = _download(page, "Save", "SVG")
        assert name.endswith(".svg") and svg.lstrip().startswith(b"<svg")
        name, png = _download(page, "Save", "PNG")
        assert name.endswith(".png") and png.startswith(b"\x89PNG")
        name, spec = _download(page, "Save", "Vega-Lite JSON")
        assert json.loads(spec)["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
        name, csv = _download(page, "Save", "Data (CSV)")
        header = csv.decode().splitlines()[0].split(",")
        assert {"row", "col", "attribution"} <= set(header), header
        assert len(csv.decode().splitlines()) == 28 * 28 + 1

        name, npz = _download(page, "Download results", "NPZ (all arrays)")
        arrays = np.load(io.BytesIO(npz))
        assert arrays["attribution__attributions"].reshape(-1).shape == (784,)
        name, record = _download(page, "Download results", "JSON")
        assert json.loads(record)["attribution"]["record"], "the JSON download holds the result's metadata"
        _no_exception(page)
    finally:
        context.close()


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the select box labelled ``label`` (opening collapsed expanders first)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    combo = page.get_by_role("combobox", name=label, exact=True).first
    if not combo.is_visible():
        closed = page.locator("[data-testid='stExpander'] details:not([open]) > summary")
        for _ in range(closed.count()):
            closed.first.click()
    choice = page.get_by_role("option", name=option, exact=True).first
    for _ in range(5):  # a click while an expander is still opening can miss: try again
        combo.click()
        try:
            choice.wait_for(timeout=2000)
            break
        except PlaywrightTimeout:
            continue
    choice.click()


def _fresh_chart_screenshots(browser, url: str, n: int) -> list[bytes]:
    """Screenshots of the first ``n`` charts of ``url`` opened in a new session (drawn from scratch)."""
    context, page = _new_page(browser)
    try:
        page.goto(url)
        _settle(page)
        charts = page.locator("[data-testid='stVegaLiteChart']")
        return [charts.nth(i).screenshot() for i in range(n)]
    finally:
        context.close()


def test_another_head_updates_the_drawn_maps_in_place_and_draws_what_a_fresh_page_draws(server, browser):
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/attention?model=vit-dot&sample=11")
        _settle(page)
        charts = page.locator("[data-testid='stVegaLiteChart']")
        count = charts.count()
        head_map, overlay, grid = charts.nth(0), charts.nth(1), charts.nth(2)
        drawn = [c.locator("canvas").first.element_handle() for c in (head_map, overlay, grid)]
        before = [head_map.screenshot(), overlay.screenshot()]
        _choose(page, "Head", "2")
        _settle(page)
        _no_exception(page)
        assert "head=2" in page.url
        assert [c.evaluate("c => c.isConnected") for c in drawn] == [True] * 3, "a chart was built anew, not updated"
        page.mouse.move(0, 0)  # the option clicked lay over a chart: its hover toolbar would show
        updated = [head_map.screenshot(), overlay.screenshot()]
        assert updated[0] != before[0] and updated[1] != before[1]
        assert charts.count() == count
        url = page.url
    finally:
        context.close()
    assert _fresh_chart_screenshots(browser, url, 2) == updated  # titles included


def test_another_target_updates_the_drawn_heatmap_in_place_and_draws_what_a_fresh_page_draws(server, browser):
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/attribution?model=vit-dot&method=integrated_gradients&n_steps=16&sample=11")
        _settle(page)
        heatmap = page.locator("[data-testid='stVegaLiteChart']").first
        canvas = heatmap.locator("canvas").first.element_handle()
        before = heatmap.screenshot()
        _choose(page, "Explained class", "2 (2)")
        _settle(page)
        _no_exception(page)
        assert _metrics(page)["Explained"] == "2"
        assert canvas.evaluate("c => c.isConnected"), "the chart was built anew instead of updated in place"
        updated = heatmap.screenshot()
        assert updated != before
        url = page.url
    finally:
        context.close()
    assert _fresh_chart_screenshots(browser, url, 1) == [updated]
