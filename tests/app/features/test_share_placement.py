"""Share is in the same place on every analysis page: at the top of the results, before the first chart."""

from __future__ import annotations

import pytest

from tests.app.apptest import open_page

PAGES = {
    "attribution": {"model": "vit-dot", "method": "saliency", "sample": "3"},
    "compare": {"sample": "3", "columns": "vit-dot:saliency,vit-dot:input_x_gradient"},
    "latent": {"model": "vae-2d", "sample": "3"},
    "capsules": {"sample": "3"},
    "synthesizers": {"sample": "3"},
    "attention": {"model": "vit-dot", "sample": "3"},
}


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def _order(at) -> list[str]:
    """The main area's elements in page order: 'share' for the Share button, 'chart' for a chart."""
    kinds = []
    for node in _walk(at.main):
        if getattr(node, "type", "") == "button" and getattr(node, "label", "") == "Share":
            kinds.append("share")
        elif "vega_lite" in getattr(node, "type", ""):
            kinds.append("chart")
    return kinds


@pytest.mark.parametrize("page", PAGES)
def test_share_comes_before_the_first_chart(page):
    at = open_page(page, PAGES[page])
    assert not at.exception, [e.value for e in at.exception]
    kinds = _order(at)
    assert "share" in kinds and "chart" in kinds, kinds
    assert kinds.index("share") < kinds.index("chart"), kinds
