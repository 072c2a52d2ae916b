"""Two ``zooscope serve`` replicas on one PostgreSQL database: a link shared on one opens on the other.

A real browser shares an Integrated Gradients view on replica A and opens the link on replica B,
in a fresh browser context (no cookies, no session), as a load balancer might send it there. B
shows the saved numbers (the metrics, and the attribution map's CSV byte for byte) without
recomputing, and neither replica wrote a SQLite store: the share lives in PostgreSQL only.
Needs chromium (tests/app/test_browser.py) and PostgreSQL's binaries (tests/pg.py).
"""

from __future__ import annotations

import time

import pytest

from tests.app import serving
from tests.app.test_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    _download,
    _metrics,
    _new_page,
    _no_exception,
    _require_chromium,
    _settle,
)

pytest_plugins = ["tests.pg"]  # pg_server: a throwaway PostgreSQL

pytestmark = pytest.mark.browser


def _metrics_when_drawn(page, n: int, timeout_s: float = 60) -> dict[str, str]:
    """The page's metric cards once ``n`` of them are drawn (a link's caption arrives before its numbers)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shown = _metrics(page)
        if len(shown) >= n:
            return shown
        time.sleep(0.2)
    return _metrics(page)


@pytest.fixture(scope="module")
def replicas(pg_server, tmp_path_factory):
    """Two servers, each with its own ZOOSCOPE_HOME, both on one fresh database; yields (URLs, homes, db URL)."""
    _require_chromium()
    database = pg_server.new_database_url()
    started, homes = [], []
    try:
        for name in ("a", "b"):
            homes.append(tmp_path_factory.mktemp(f"replica-{name}"))
            started.append(serving.start(homes[-1], {"ZOOSCOPE_STORE_URL": database}))
        for proc, url, log in started:
            serving.wait_healthy(url, proc, log)
        yield [url for _, url, _ in started], homes, database
    finally:
        for proc, _, _ in started:
            serving.stop(proc)


@pytest.fixture(scope="module")
def browser(replicas):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_a_link_shared_on_one_replica_opens_on_the_other_with_identical_numbers(replicas, browser):
    import psycopg

    (a, b), homes, database = replicas
    context, page = _new_page(browser)
    try:
        page.goto(f"{a}/attribution?model=vit-dot&method=integrated_gradients&n_steps=16&sample=7")
        _settle(page)
        shown = _metrics_when_drawn(page, 7)  # prediction, explained, F(input), and the completeness row
        assert shown.get("Prediction"), shown
        _, csv_on_a = _download(page, "Save", "Data (CSV)")
        page.get_by_role("button", name="Share").click()
        code = page.locator(".st-key-share-link a", has_text="?id=").first
        code.wait_for()
        link = code.inner_text().strip()
        assert link.startswith(a + "/attribution?id=")
        _settle(page)
    finally:
        context.close()

    link_id = link.split("id=")[1]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT kind FROM zooscope_analyses WHERE id = %s", (link_id,)).fetchone() == (
            "attribution",)

    fresh, page = _new_page(browser)  # the load balancer sent this visitor to the other replica
    try:
        page.goto(link.replace(a, b))
        _settle(page)
        page.get_by_text("the numbers are the saved ones").first.wait_for()
        _no_exception(page)
        assert _metrics_when_drawn(page, len(shown)) == shown
        _, csv_on_b = _download(page, "Save", "Data (CSV)")
        assert csv_on_b == csv_on_a and len(csv_on_a.decode().splitlines()) == 28 * 28 + 1
        page.screenshot(path=str(ARTIFACTS / "replica-b-opens-a-link-from-a.png"), full_page=True)
    finally:
        fresh.close()
    assert not [p for home in homes for p in home.glob("*.sqlite3")], "no replica kept a store of its own"
