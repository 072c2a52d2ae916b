"""Familiarity: uploads unlike the training digits (noise, a typeset digit) are flagged, real digits are not;
the readout under an upload never raises into the page, and the Attribution page warns on a noise upload."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from app.links import catalogue
from app.runtime import familiarity as fam
from app.runtime.guards import AnalysisError
from app.runtime.images import decode_image
from app.runtime.models import heldout_split, sample_pixels
from app.ui import pickers
from app.ui.session import WidgetKeys
from tests.app.apptest import open_page

pytestmark = pytest.mark.skipif(not catalogue.has_weights(fam.FAMILIARITY_MODEL),
                                reason=f"no checkpoint for {fam.FAMILIARITY_MODEL} yet")


def _png(gray: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(gray).save(out, "PNG")
    return out.getvalue()


def _noise_png(side: int = 600, seed: int = 0) -> bytes:
    """Uniform noise, as a person might upload by mistake (the issue's was 4.8 MB)."""
    return _png((np.random.default_rng(seed).random((side, side)) * 255).astype(np.uint8))


def _typeset_png(text: str, font: ImageFont.FreeTypeFont) -> bytes:
    """A typeset digit, black on white: the issue's misclassified uploads."""
    img = Image.new("L", (240, 260), 255)
    ImageDraw.Draw(img).text((40, 20), text, fill=0, font=font)
    return _png(np.asarray(img))


def _bold_serif() -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype("DejaVuSerif-Bold.ttf", 160)  # found in the system's font folders
    except OSError:
        pytest.skip("DejaVu Serif Bold is not installed")


def _as_uploaded(pixels: np.ndarray) -> bytes:
    """A held-out digit as a person would upload it: 10x larger, dark on light."""
    big = np.kron(1.0 - pixels, np.ones((10, 10), dtype=np.float32))
    return _png((big * 255).round().astype(np.uint8))


def test_noise_is_unusual_whether_uploaded_or_given_as_pixels():
    found = fam.familiarity(decode_image(_noise_png()).pixels)
    assert found.unusual and found.percentile == 100.0 and found.score > found.threshold, found
    raw_noise = np.random.default_rng(1).random((28, 28), dtype=np.float32)  # straight in, not prepared
    assert fam.familiarity(raw_noise).percentile == 100.0


@pytest.mark.parametrize("digit", ["4", "9"])  # vit-dot reads these as a 2 and a 0
def test_a_heavy_typeset_digit_is_unusual(digit):
    found = fam.familiarity(decode_image(_typeset_png(digit, _bold_serif())).pixels)
    assert found.unusual and found.percentile > fam.UNUSUAL_PERCENTILE, found


def test_a_thin_typeset_digit_is_not_caught_by_this_score():
    """The limit of a likelihood score: Pillow's default sans-serif "1" scores like a real, simple digit."""
    found = fam.familiarity(decode_image(_typeset_png("1", ImageFont.load_default(size=160))).pixels)
    assert not found.unusual and found.percentile < 50, found


def test_held_out_digits_are_not_unusual_as_they_are_or_uploaded_as_images():
    indices = np.linspace(0, len(heldout_split().y_heldout) - 1, 50).astype(int)
    direct = [fam.familiarity(sample_pixels(int(i))).unusual for i in indices]
    uploaded = [fam.familiarity(decode_image(_as_uploaded(sample_pixels(int(i)))).pixels).unusual for i in indices]
    assert sum(direct) <= 2 and sum(uploaded) <= 2, (sum(direct), sum(uploaded))  # >= 95 % of 50 not flagged


def test_the_reference_is_the_held_out_split_computed_once_and_the_threshold_its_99th_percentile():
    scores = fam.heldout_scores()
    assert fam.heldout_scores() is scores and scores.shape == (1000,) and not scores.flags.writeable
    assert np.all(np.diff(scores) >= 0)
    found = fam.familiarity(sample_pixels(3))
    assert found.threshold == pytest.approx(np.percentile(scores, 99)) and found.model == "vae-16d"
    assert fam.familiarity(sample_pixels(3)) == found  # deterministic: the posterior mean, no draws
    assert np.isclose(scores, found.score).any()  # a held-out digit scores as it did in the reference


def test_the_sentences_say_what_the_score_means():
    unusual = fam.Familiarity(412.3, 100.0, True, 180.0, "vae-16d").sentence()
    assert unusual.startswith("Unlike the training digits: vae-16d gives it a negative ELBO of 412 nats, higher than "
                              "every held-out digit (unusual above 180 nats")
    assert "explain a guess" in unusual
    assert "higher than 99 % of" in fam.Familiarity(190.0, 99.6, True, 180.0, "vae-16d").sentence()  # never rounded up
    usual = fam.Familiarity(101.0, 48.2, False, 180.0, "vae-16d").sentence()
    assert usual.startswith("Like the training digits") and "48 %" in usual and "guess" not in usual


def test_the_readout_never_raises_into_the_page(monkeypatch):
    def refused(_):
        raise AnalysisError("The model could not be loaded: vae-16d has no checkpoint.")

    monkeypatch.setattr(pickers, "familiarity", refused)
    found, problem = pickers.familiarity_readout(sample_pixels(0))
    assert found is None and problem == "The model could not be loaded: vae-16d has no checkpoint."

    def broken(_):
        raise ValueError("a bug")

    monkeypatch.setattr(pickers, "familiarity", broken)
    found, problem = pickers.familiarity_readout(sample_pixels(0))
    assert found is None and "server log" in problem and "a bug" not in problem


def test_the_attribution_page_warns_under_an_uploaded_noise_image():
    keys = WidgetKeys("attribution")
    at = open_page("attribution", {"model": "vit-dot", "method": "saliency", "sample": "17"})
    at.radio(key=keys.name("source")).set_value("Upload").run()
    at.file_uploader(key=keys.name("upload")).set_value(("noise.png", _noise_png(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value.replace("\\", "") for w in at.warning]
    assert any(w.startswith("Unlike the training digits") and "explain a guess" in w for w in warnings), warnings
    assert at.metric or at.markdown  # the page still analyses the upload below the warning

    at.file_uploader(key=keys.name("upload")).set_value(("digit.png", _as_uploaded(sample_pixels(17)),
                                                         "image/png")).run()
    assert not at.exception and not [w for w in at.warning if "training digits" in w.value]
    assert any(c.value.replace("\\", "").startswith("Like the training digits") for c in at.caption)
