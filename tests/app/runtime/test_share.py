"""Share links: the address of a saved analysis, behind whatever prefix the server is reached at."""

from __future__ import annotations

import pytest

from app.runtime import share


@pytest.mark.parametrize("base, page, expected", [
    (None, "attribution", "/attribution?id=X"),
    ("http://127.0.0.1:8501/attribution", "attribution", "http://127.0.0.1:8501/attribution?id=X"),
    ("http://127.0.0.1:8501/", "attribution", "http://127.0.0.1:8501/attribution?id=X"),
    ("https://host/zoo/compare", "compare", "https://host/zoo/compare?id=X"),
    ("http://h:1/", "", "http://h:1/?id=X"),
])
def test_share_urls_carry_the_page_path_and_the_id(base, page, expected):
    assert share.link_url(base, page, "X") == expected
