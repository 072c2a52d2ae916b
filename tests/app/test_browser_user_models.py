"""A real browser against ``zooscope serve`` with the user's own model folders (issue 17).

The server is given tiny Hugging Face folders (built from configs, never downloaded) through
``ZOOSCOPE_MODELS``: a ViT on 32x32 RGB, a BERT sentiment classifier, the same BERT reading 512
tokens, and a ResNet (no attention). The tests explain an uploaded RGB image and a typed sentence,
share each, and open each link in a fresh browser context with identical numbers; a 512-token text's
attention map fits its column and another head redraws quickly; the ResNet says it has no attention.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests import hf_fixtures as fx
from tests.app import serving
from tests.app.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _metrics, _new_page, _no_exception, \
    _require_chromium, _settle

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore")]
SENTENCE = "great acting and a clever plot"
HEAD_REDRAW_S = 2.0  # asserted with room for a loaded machine; the measured time is printed (README: ~0.3 s)


def _bert_512(root):
    """The tiny BERT classifier with 512 positions and a tokenizer that reads 512 tokens."""
    import json

    folder = fx.tiny_bert_classifier_folder(root, name="tiny-bert-512")
    cfg = json.loads((folder / "config.json").read_text())
    from transformers import BertConfig, BertForSequenceClassification

    cfg.update(max_position_embeddings=512)
    config = BertConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    tok = json.loads((folder / "tokenizer_config.json").read_text())
    tok["model_max_length"] = 512
    (folder / "tokenizer_config.json").write_text(json.dumps(tok))
    return folder


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("user-models")
    for make in (fx.tiny_vit_folder, fx.tiny_bert_classifier_folder, fx.tiny_resnet_folder, _bert_512):
        make(root)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    _require_chromium()
    proc, url, log = serving.start(tmp_path_factory.mktemp("zooscope-home"), {"ZOOSCOPE_MODELS": str(models_dir)})
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


def _rgb_png(path):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (120, 90), (30, 120, 200))
    ImageDraw.Draw(image).ellipse((20, 10, 90, 80), fill=(240, 200, 40))
    image.save(path)
    return path


def _share(page, server: str, page_name: str) -> str:
    page.get_by_role("button", name="Share").click()
    code = page.locator(".st-key-share-link a", has_text="?id=").first
    code.wait_for()
    link = code.inner_text().strip()
    assert link.startswith(f"{server}/{page_name}?id=")
    return link


def _reopen(browser, link: str, shot: str) -> dict[str, str]:
    fresh, page = _new_page(browser)  # no cookies, no session
    try:
        page.goto(link)
        _settle(page)
        page.get_by_text("the numbers are the saved ones").first.wait_for()
        _no_exception(page)
        assert page.get_by_text("has changed since").count() == 0  # the folder's weights sha256 is the same
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
        return _metrics(page)
    finally:
        fresh.close()


def _refine_off(page) -> None:
    """Turn off progressive sharpening where the page offers it (one final result, its numbers exact)."""
    toggle = page.get_by_text("Sharpen progressively", exact=True)
    if toggle.count():
        toggle.first.click()
        _settle(page)


def test_uploaded_rgb_image_is_explained_shared_and_reopened(server, browser, tmp_path):
    upload = _rgb_png(tmp_path / "sun.png")
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/attribution?model=tiny-vit&method=integrated_gradients&n_steps=32")
        _settle(page)
        _refine_off(page)
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(upload))
        page.get_by_text("as the model sees it (32 × 32 RGB)").first.wait_for()
        _settle(page)
        _no_exception(page)
        shown = _metrics(page)
        assert shown.get("Prediction") in ("cat", "dog", "bird"), shown
        assert shown.get("Relative error", "").endswith("%") and float(shown["Relative error"][:-1]) < 5, shown
        assert "upload=" in page.url
        page.screenshot(path=str(ARTIFACTS / "user-attribution-image.png"), full_page=True)
        link = _share(page, server, "attribution")
    finally:
        context.close()
    assert _reopen(browser, link, "user-attribution-image-reopened.png") == shown


def test_typed_sentence_is_explained_as_words_shared_and_reopened(server, browser):
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/attribution?model=tiny-bert-sentiment")
        _settle(page)
        box = page.get_by_role("textbox", name="Text")
        box.fill(SENTENCE)
        box.press("Control+Enter")
        _settle(page)
        _no_exception(page)
        assert "text=great+acting" in page.url
        shown = _metrics(page)
        assert shown.get("Prediction") in ("negative", "positive") and float(shown["Relative error"][:-1]) < 5, shown
        page.screenshot(path=str(ARTIFACTS / "user-attribution-text.png"), full_page=True)
        link = _share(page, server, "attribution")
    finally:
        context.close()
    assert _reopen(browser, link, "user-attribution-text-reopened.png") == shown


def test_a_512_token_attention_map_fits_its_column_and_another_head_redraws_fast(server, browser):
    text = " ".join(["the film was a delight from start to finish and great acting"] * 50)  # > 512 tokens
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/attention?model=tiny-bert-512")
        _settle(page)
        box = page.get_by_role("textbox", name="Text")
        box.fill(text)
        box.press("Control+Enter")
        _settle(page)
        _no_exception(page)
        page.get_by_text("512 tokens", exact=False).first.wait_for()
        column = page.locator("[data-testid='stColumn']").nth(1).bounding_box()
        charts = page.locator("[data-testid='stVegaLiteChart']")
        for i in range(charts.count()):
            box_i = charts.nth(i).bounding_box()
            if box_i:
                assert box_i["x"] + box_i["width"] <= column["x"] + column["width"] + 1, "a chart overflows its column"
        times = []
        combo = page.get_by_role("combobox", name="Head", exact=True).first
        for head in ("1", "0", "1", "0", "1"):
            combo.click()
            option = page.get_by_role("option", name=head, exact=True).first
            option.wait_for()
            start = time.monotonic()  # from the click on another head to the page at rest with it drawn
            option.click()
            page.wait_for_function(f"() => location.search.includes('head={head}')")
            page.wait_for_function("() => !document.querySelector(\"[data-testid='stStatusWidget']\")")
            times.append(time.monotonic() - start)
            _settle(page, quiet_s=0.5)
            _no_exception(page)
        print(f"head change redraw at 512 tokens: {np.round(times, 3).tolist()} s")
        assert np.median(times) <= HEAD_REDRAW_S, times
        page.screenshot(path=str(ARTIFACTS / "user-attention-512.png"), full_page=True)
    finally:
        context.close()


def test_a_model_without_attention_says_so(server, browser):
    context, page = _new_page(browser)
    try:
        page.goto(f"{server}/attention?model=tiny-resnet")
        _settle(page)
        page.get_by_text("tiny-resnet has no attention to show").first.wait_for()
        _no_exception(page)
    finally:
        context.close()
