"""A real browser sees the provisional attribution drawn at once and replaced in place by the final one.

Drives Debian's chromium through Playwright (skips without it outside CI, as tests/app/test_browser.py).
"""

from __future__ import annotations

import time

import pytest

from tests.app import serving
from tests.app.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _no_exception, _require_chromium

pytestmark = pytest.mark.browser

# 32 noise baselines: each level of path points costs 32 evaluations per point, so the provisional map
# stays on screen long enough to be seen on a CPU (a black baseline passes in ~0.1 s); capsnet, the zoo's slowest
# classifier, keeps it there for seconds even on a fast machine (vit-dot passed in 0.75 s, before Vega drew it).
URL = "/attribution?model=capsnet&method=integrated_gradients&sample=17&baseline=uniform&baseline_draws=32"

# Records, at every change of the page, whether a provisional caption and how many heatmaps are shown.
OBSERVER = """
window.__states = [];
const record = () => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return;
  const text = main.innerText;
  const state = (text.includes('Provisional —') ? 'P' : '') + (text.includes('Sharpened progressively — final') ? 'F' : '');
  const charts = main.querySelectorAll('[data-testid="stVegaLiteChart"]').length;
  const last = window.__states[window.__states.length - 1];
  if (!last || last.state !== state || last.charts !== charts) window.__states.push({state, charts, t: performance.now()});
};
new MutationObserver(record).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _require_chromium()
    proc, url, log = serving.start(tmp_path_factory.mktemp("zooscope-home"))
    try:
        serving.wait_healthy(url, proc, log)
        yield url
    finally:
        serving.stop(proc)


def test_the_provisional_heatmap_is_replaced_in_place_by_the_final_one(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 2000})
            context.set_default_timeout(120_000)
            context.add_init_script(OBSERVER)
            page = context.new_page()
            page.goto(server + URL)
            page.get_by_text("Provisional —").first.wait_for()
            page.locator("[data-testid='stMain'] [data-testid='stVegaLiteChart'] canvas, "
                         "[data-testid='stMain'] [data-testid='stVegaLiteChart'] svg").first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "refine-provisional.png"), full_page=True)
            page.get_by_text("Sharpened progressively — final").first.wait_for()
            deadline = time.monotonic() + 60
            while page.locator("[data-testid='stStatusWidget']").count() and time.monotonic() < deadline:
                time.sleep(0.2)
            page.screenshot(path=str(ARTIFACTS / "refine-final.png"), full_page=True)
            _no_exception(page)
            states = page.evaluate("window.__states")
        finally:
            browser.close()
    seen = [s["state"] for s in states]
    first_p, first_f = seen.index("P"), next(i for i, s in enumerate(seen) if "F" in s)
    assert first_p < first_f, seen  # provisional first, final after
    assert "P" not in seen[first_f:] and all("P" not in s for s in seen[first_f:]), seen  # never both, never back
    provisional = [s["charts"] for s in states if s["state"] == "P"]
    assert max(provisional) == 1, states  # one provisional map, redrawn in its place
    assert states[-1]["charts"] >= 2, states  # the final page: the heatmap and the class scores (then curves)
    assert page_heatmaps_replaced(states), states


def page_heatmaps_replaced(states: list[dict]) -> bool:
    """No moment shows the provisional map beside the final page's charts: the map was swapped, not added."""
    return all(not (s["state"] == "P" and s["charts"] > 1) for s in states)
