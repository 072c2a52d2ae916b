"""A refused upload never shows someone else's result: the results area says what was refused and shows nothing."""

from __future__ import annotations


import pytest

from app.ui.session import WidgetKeys
from tests.app.apptest import bar_png, numbers, open_page

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><circle r="9"/></svg>'


def infos(at) -> list[str]:
    return [i.value.replace("\\", "") for i in at.info]


@pytest.mark.parametrize("page, query", [
    ("attribution", {"model": "vit-dot", "method": "saliency", "sample": "0"}),
    ("compare", {"sample": "0", "columns": "vit-dot:saliency,vit-dot:input_x_gradient"}),
    ("capsules", {"sample": "0"}),
])
def test_a_refused_upload_shows_what_was_refused_and_no_result(page, query):
    keys = WidgetKeys(page)
    at = open_page(page, query)
    assert "Prediction" in numbers(at), "held-out digit #0 is analysed first"
    at.radio(key=keys.name("source")).set_value("Upload").run()
    assert not at.exception and "Prediction" not in numbers(at), "no result before anything is uploaded"
    assert any(i.startswith("Nothing uploaded yet") for i in infos(at)), infos(at)

    at.file_uploader(key=keys.name("upload")).set_value(("drawing.svg", SVG, "image/svg+xml")).run()
    assert not at.exception
    assert "Prediction" not in numbers(at), "held-out digit #0's result must not stand in for the refused file"
    assert any(i.startswith("The uploaded file was not used") and "SVG" in i for i in infos(at)), infos(at)
    assert not [c for c in at.caption if c.value.startswith("Nothing uploaded yet")], "a file was uploaded"

    at.file_uploader(key=keys.name("upload")).set_value(("one.png", bar_png(), "image/png")).run()
    assert not at.exception and "Prediction" in numbers(at), "a valid upload is analysed"


def test_the_attention_page_shows_no_maps_for_a_refused_upload():
    keys = WidgetKeys("attention")
    at = open_page("attention", {"model": "vit-dot", "sample": "0"})
    assert at.get("vega_lite_chart") or at.get("arrow_vega_lite_chart")
    at.radio(key=keys.name("source")).set_value("Upload").run()
    at.file_uploader(key=keys.name("upload")).set_value(("drawing.svg", SVG, "image/svg+xml")).run()
    assert not at.exception
    assert not at.get("vega_lite_chart") and not at.get("arrow_vega_lite_chart"), "no maps of held-out #0"
    assert any(i.startswith("The uploaded file was not used") for i in infos(at)), infos(at)


def test_a_shared_upload_reopens_with_the_image_as_uploaded_beside_the_digit():
    from app.runtime import share
    from app.ui.session import SessionData
    from tests.app.test_pages import share as click_share

    keys = WidgetKeys("attribution")
    at = open_page("attribution", {"model": "vit-dot", "method": "saliency", "sample": "0"})
    at.radio(key=keys.name("source")).set_value("Upload").run()
    at.file_uploader(key=keys.name("upload")).set_value(("one.png", bar_png(), "image/png")).run()
    link = click_share(at)
    saved = share.open_link(link)
    assert saved.inputs["preview"].shape == (80, 80) and saved.inputs["pixels"].shape == (28, 28)
    data = SessionData()
    share.restore_inputs(saved, data)
    (restored,) = data.uploads.values()
    assert restored.display.shape == (80, 80) and "as uploaded" in restored.notices[0]
