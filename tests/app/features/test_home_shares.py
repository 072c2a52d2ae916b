"""Home through Streamlit's AppTest: shares are private unless published.

A browser is who ``app.ui.results.visitor()`` says: a hash of its XSRF cookie. AppTest has no
browser (no cookie, and every AppTest session has the same id, "test session id"), so these
tests give each simulated browser its own XSRF cookie through ``st.context``'s client context,
written as Streamlit writes it: ``2|mask|token xor mask|timestamp``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest
import streamlit.runtime.context

from app.runtime import share
from app.ui.results import XSRF_COOKIE
from app.ui.session import WidgetKeys
from tests.app.apptest import bar_png, open_page

SALIENCY = {"model": "vit-dot", "method": "saliency", "sample": "17"}
OLD_STORE = Path(__file__).resolve().parents[1] / "fixtures" / "store-v1" / "analyses.sqlite3"
NOTHING_YET = "Nothing shared from this browser yet."


def xsrf_cookie(name: str, mask: bytes = bytes.fromhex("0a1b2c3d")) -> str:
    """Browser ``name``'s XSRF cookie as Streamlit writes it: its token masked with ``mask``."""
    token = hashlib.sha256(name.encode()).digest()[:16]
    masked = bytes(t ^ mask[i % 4] for i, t in enumerate(token))
    return f"2|{mask.hex()}|{masked.hex()}|1765000000"


@pytest.fixture
def browser(monkeypatch):
    """``browser("A")``: the page runs that follow come from browser A (its own XSRF cookie)."""
    cookie = {}
    monkeypatch.setattr(streamlit.runtime.context, "_get_client_context",
                        lambda: SimpleNamespace(headers=[], cookies=dict(cookie), remote_ip=None))

    def switch(name: str, **mask: bytes) -> None:
        cookie[XSRF_COOKIE] = xsrf_cookie(name, **mask)

    switch("A")
    return switch


def click_share(at) -> str:
    """Click Share and return the new link id."""
    next(b for b in at.button if b.label == "Share").click().run()
    assert not at.exception, [e.value for e in at.exception]
    link = at.query_params.get("id")
    assert isinstance(link, str) and len(link) == 22, at.query_params
    return link


def click(at, label: str):
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def labels(at) -> list[str]:
    return [b.label for b in at.button]


def captions(at) -> list[str]:
    return [c.value.replace("\\", "") for c in at.caption]


def sections(at) -> dict[str, list[str]]:
    """Home's share links under each subheading: heading -> the link ids listed there, in order."""
    found: dict[str, list[str]] = {}
    heading = ""

    def walk(node) -> None:
        nonlocal heading
        if getattr(node, "type", None) == "subheader":
            heading = node.value
            found[heading] = []
        elif getattr(node, "type", None) == "page_link":
            link = parse_qs(node.proto.query_string).get("id")
            if link:
                found.setdefault(heading, []).extend(link)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    return found


def home(browser, name: str):
    browser(name)
    at = open_page("home")
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_share_is_listed_on_its_own_browsers_home_and_on_no_one_elses(browser):
    link = click_share(open_page("attribution", SALIENCY))

    mine = home(browser, "A")
    assert sections(mine) == {"Curated analyses": [], "Your shares": [link], "Published by visitors": []}

    theirs = home(browser, "B")
    assert sections(theirs) == {"Curated analyses": [], "Your shares": [], "Published by visitors": []}
    assert any(c.startswith(NOTHING_YET) for c in captions(theirs)), captions(theirs)
    assert not any(link in p.proto.query_string for p in theirs.get("page_link")), "no trace of A's share"


def test_a_published_share_is_in_everyones_gallery_until_its_owner_withdraws_it(browser):
    at = open_page("attribution", SALIENCY)
    link = click_share(at)
    assert "Anyone with this link sees exactly this analysis. Home lists it for you alone, unless you publish it." \
        in captions(at), captions(at)
    publish = next(b for b in at.button if b.label == "Publish to the gallery")
    assert "Anyone who opens this app will see this analysis" in publish.help
    assert sections(home(browser, "B"))["Published by visitors"] == [], "not before it is published"

    browser("A")
    click(at, "Publish to the gallery")
    assert any(c.startswith(":material/public: Published: anyone who opens this app sees it") for c in captions(at))
    assert "Publish to the gallery" not in labels(at) and "Remove from the gallery" in labels(at)
    assert at.query_params == {"id": link}, "the link stays"

    theirs = home(browser, "B")
    assert sections(theirs)["Published by visitors"] == [link] and sections(theirs)["Your shares"] == []
    mine = home(browser, "A")
    assert sections(mine)["Your shares"] == [link]
    assert any(p.proto.label.endswith("· published") for p in mine.get("page_link")), "marked as published"

    browser("A")
    click(at, "Remove from the gallery")
    assert "Publish to the gallery" in labels(at)
    assert sections(home(browser, "B"))["Published by visitors"] == []
    assert sections(home(browser, "A"))["Your shares"] == [link], "withdrawn, not deleted"


def test_another_browser_opening_the_link_gets_no_publish_button(browser):
    link = click_share(open_page("attribution", SALIENCY))
    browser("B")
    at = open_page("attribution", {"id": link})
    assert not at.exception and at.query_params == {"id": link}
    assert not {"Publish to the gallery", "Remove from the gallery"} & set(labels(at)), labels(at)
    assert "Anyone with this link sees exactly this analysis." in captions(at), "no 'publish it' for a stranger"
    with pytest.raises(share.NotPublished, match="only the browser that shared"):
        share.publish(link, "b" * 16)

    browser("A")  # the same browser in another tab (another session) may publish it
    again = open_page("attribution", {"id": link})
    click(again, "Publish to the gallery")
    assert sections(home(browser, "C"))["Published by visitors"] == [link]


def test_without_a_gallery_home_has_none_and_share_offers_no_publish(browser, monkeypatch):
    first = open_page("attribution", SALIENCY)
    published = click_share(first)
    click(first, "Publish to the gallery")

    monkeypatch.setenv(share.GALLERY_ENV, "0")
    at = open_page("attribution", {**SALIENCY, "sample": "18"})
    link = click_share(at)
    assert not {"Publish to the gallery", "Remove from the gallery"} & set(labels(at)), labels(at)
    assert "Anyone with this link sees exactly this analysis. Home lists it for you alone." in captions(at)
    assert sections(home(browser, "B")) == {"Curated analyses": [], "Your shares": []}
    assert sections(home(browser, "A")) == {"Curated analyses": [], "Your shares": [link, published]}
    assert not any(p.proto.label.endswith("· published") for p in home(browser, "A").get("page_link"))


def test_publishing_an_upload_says_that_everyone_will_see_the_image(browser):
    keys = WidgetKeys("attribution")
    at = open_page("attribution", SALIENCY)
    at.radio(key=keys.name("source")).set_value("Upload").run()
    at.file_uploader(key=keys.name("upload")).set_value(("mine.png", bar_png(), "image/png")).run()
    assert not at.exception and "upload" in at.query_params
    click_share(at)
    warned = "This share holds the image you uploaded: publishing it shows the image you uploaded to everyone"
    assert any(warned in c for c in captions(at)), captions(at)
    publish = next(b for b in at.button if b.label == "Publish to the gallery")
    assert publish.help.endswith("the image you uploaded included")

    click(at, "Publish to the gallery")
    assert any(c.startswith(":material/public: Published:") and "with the image you uploaded" in c
               for c in captions(at)), captions(at)


def test_old_links_are_nobodys_and_stay_unpublished(browser, zooscope_home):
    shutil.copy(OLD_STORE, zooscope_home / "analyses.sqlite3")
    old = share.store().recent(1000)
    assert old

    assert sections(home(browser, "A")) == {"Curated analyses": [], "Your shares": [], "Published by visitors": []}
    at = open_page("attribution", {"id": next(s.id for s in old if s.kind == "attribution")})
    assert not at.exception and not at.error
    assert "Publish to the gallery" not in labels(at), "no one owns an old share, so no one can publish it"
    assert not any(share.is_published(s.id) for s in old) and share.published() == []


def test_a_browser_keeps_its_shares_when_streamlit_re_masks_its_cookie(browser):
    link = click_share(open_page("attribution", SALIENCY))
    browser("A", mask=bytes.fromhex("99887766"))  # the same browser after a reload: same token, new mask
    assert sections(open_page("home"))["Your shares"] == [link]
