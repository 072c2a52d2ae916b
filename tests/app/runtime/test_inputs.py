"""Uploaded bytes and typed text: what is accepted, what is refused and how it is prepared."""

from __future__ import annotations

import inspect
import io
import random
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, features

from app.runtime import images, inputs
from app.runtime.images import MAX_PIXELS, MAX_UPLOAD_BYTES, DecodedImage, configure_pillow, decode_image
from app.runtime.inputs import InputError, pixels_from_array, preprocess_mnist, safe_filename_label, validate_text

REPO_ROOT = Path(__file__).resolve().parents[3]


# ---------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def digit_image(mode: str = "L", size=(96, 80), ink=0, paper=255) -> Image.Image:
    """A thick dark stroke shaped like a 7 on light paper."""
    img = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(img)
    draw.line((20, 15, 70, 15), fill=ink, width=8)
    draw.line((70, 15, 40, 70), fill=ink, width=8)
    return img


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header declares width x height 8-bit gray pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(pixels.shape)
    return float((rows * pixels).sum() / pixels.sum()), float((cols * pixels).sum() / pixels.sum())


def refused(data: bytes) -> str:
    with pytest.raises(InputError) as info:
        decode_image(data)
    return str(info.value)


GOOD_PNG = encode(digit_image(), "PNG")


# ---------------------------------------------------------- refusals


def test_over_the_size_limit_is_refused_before_decoding():
    message = refused(GOOD_PNG + b"\x00" * MAX_UPLOAD_BYTES)
    assert "MB; the limit is 5 MB" in message and "smaller" in message


def test_empty_file_is_refused():
    assert "empty" in refused(b"")


def test_random_bytes_are_refused():
    noise = random.Random(0).randbytes(4000)
    assert "not an image" in refused(noise)


def test_text_named_png_is_refused_by_content():
    assert "text, not an image" in refused(b"hello, this is just a note\nsecond line\n")


def test_html_named_png_is_refused_by_content():
    page = b"<!DOCTYPE html>\n<html><body><img src='digit.png'></body></html>"
    assert "HTML" in refused(page)


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><circle r="9"/></svg>',
        b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- drawn by hand -->\n<svg viewBox="0 0 28 28"></svg>',
    ],
)
def test_svg_is_refused_with_advice(svg):
    message = refused(svg)
    assert message.startswith("SVG is not supported") and "PNG" in message


class _Upload:
    """What a browser upload looks like to a page: a name and a MIME type that lie."""

    name = "digit.txt"
    type = "text/plain"

    def getvalue(self) -> bytes:
        return GOOD_PNG


def test_real_png_named_txt_is_accepted_because_only_bytes_reach_the_decoder():
    assert list(inspect.signature(decode_image).parameters) == ["data"]
    decoded = decode_image(_Upload().getvalue())
    assert decoded.format == "PNG" and decoded.pixels.shape == (28, 28)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_refused_as_incomplete(fmt):
    noisy = Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200), dtype=np.uint8))
    data = encode(noisy, fmt)
    message = refused(data[: len(data) // 2])
    assert fmt in message and ("incomplete" in message or "damaged" in message)


def test_decompression_bomb_is_refused_from_its_header_with_flat_memory():
    bomb = png_declaring(60_000, 60_000)
    assert len(bomb) < 200
    tracemalloc.start()
    try:
        message = refused(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "megapixels" in message and "limit" in message  # refused for its size, not as truncated
    assert peak < 50 * 2**20


def test_image_just_over_the_pixel_limit_is_refused_even_with_pillow_unconfigured(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # our own check must not depend on it
    message = refused(png_declaring(4097, 4096))
    assert "4,097 × 4,096" in message and "megapixels" in message


def test_configure_pillow_is_idempotent():
    configure_pillow()
    filters_before = list(warnings.filters)
    configure_pillow()
    assert warnings.filters == filters_before
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS
    assert ("error", Image.DecompressionBombWarning) in [(f[0], f[2]) for f in warnings.filters]


def test_extreme_aspect_ratio_is_refused():
    strip = Image.new("L", (1000, 40), 255)
    ImageDraw.Draw(strip).line((10, 20, 990, 20), fill=0, width=5)
    assert "25:1" in refused(encode(strip, "PNG"))


def test_blank_image_is_refused():
    assert "blank" in refused(encode(Image.new("L", (64, 64), 255), "PNG"))


def test_non_bytes_is_a_caller_bug():
    with pytest.raises(TypeError):
        decode_image("digit.png")  # type: ignore[arg-type]


# ------------------------------------------------------- colour handling


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)  # (64, 64)
    decoded = decode_image(encode(Image.fromarray(ramp), "PNG"))
    assert decoded.display.min() == 0.0 and decoded.display.max() == 1.0
    np.testing.assert_allclose(decoded.display, ramp / 65535.0, atol=1e-6)


def test_cmyk_jpeg_is_converted():
    data = encode(digit_image("CMYK", ink=(0, 0, 0, 255), paper=(0, 0, 0, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    decoded = decode_image(data)
    assert decoded.format == "JPEG"
    assert decoded.display[5, 5] > 0.9  # the paper is white
    assert decoded.display[15, 45] < 0.2  # the stroke is black
    assert inputs.NOTICE_INVERTED in decoded.notices


def test_palette_png_with_transparent_black_background_is_white():
    img = Image.new("P", (80, 80), 0)
    img.putpalette([0, 0, 0] + [20, 20, 20] + [0, 0, 0] * 254)  # index 0: black, but transparent
    ImageDraw.Draw(img).line((20, 10, 50, 70), fill=1, width=6)
    decoded = decode_image(encode(img, "PNG", transparency=0))
    assert decoded.display[2, 2] == 1.0 and decoded.display[40, 35] < 0.2
    assert images.NOTICE_TRANSPARENT in decoded.notices


def test_rgba_png_transparent_background_is_treated_as_white():
    img = digit_image("RGBA", ink=(0, 0, 0, 255), paper=(0, 0, 0, 0))
    decoded = decode_image(encode(img, "PNG"))
    assert decoded.display[2, 2] == 1.0 and decoded.display[15, 45] == 0.0
    assert inputs.NOTICE_INVERTED in decoded.notices
    assert decoded.pixels.max() == 1.0 and decoded.pixels[0, 0] == 0.0


def _frames(n: int) -> list[Image.Image]:
    """Frame 0 has a stroke on the left; each later one a different stroke on the right."""
    frames = []
    for i in range(n):
        frame = Image.new("L", (60, 60), 255)
        x = 12 if i == 0 else 48
        ImageDraw.Draw(frame).line((x, 8, x, 52 - 4 * i), fill=0, width=5)
        frames.append(frame)
    return frames


@pytest.mark.parametrize("fmt, name", [("GIF", "GIF"), ("WEBP", "WebP")])
def test_animated_image_uses_first_frame_with_notice(fmt, name):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    frames = _frames(4)
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    decoded = decode_image(data)
    assert f"Animated {name}: used the first of 4 frames." in decoded.notices
    assert decoded.display[30, 12] < 0.2 and decoded.display[30, 48] > 0.8  # frame 0, not a later one


def test_exif_orientation_is_applied():
    stored = Image.new("L", (60, 40), 255)  # (w, h) as stored
    ImageDraw.Draw(stored).rectangle((0, 0, 11, 11), fill=0)  # marker in the stored top-left
    ImageDraw.Draw(stored).line((25, 5, 40, 35), fill=0, width=5)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    decoded = decode_image(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.original_size == (60, 40)
    assert decoded.display.shape == (60, 40)  # (H, W) as viewed: portrait
    assert decoded.display[:8, -8:].mean() < 0.2  # a viewer sees the marker top-right
    assert decoded.display[:8, :8].mean() > 0.8
    assert images.NOTICE_ROTATED in decoded.notices


# --------------------------------------------------------- MNIST framing


def test_dark_on_light_is_inverted_and_framed_like_mnist():
    decoded = decode_image(GOOD_PNG)
    assert isinstance(decoded, DecodedImage)
    assert inputs.NOTICE_INVERTED in decoded.notices
    pixels = decoded.pixels
    assert pixels.shape == (28, 28) and pixels.dtype == np.float32
    assert pixels.min() == 0.0 and pixels.max() == 1.0
    assert pixels[0].max() == 0.0 and pixels[:, 0].max() == 0.0  # black margins
    row, col = centre_of_mass(pixels)
    assert abs(row - 14) <= 1.0 and abs(col - 14) <= 1.0


def test_content_is_cropped_and_fitted_in_20_by_20():
    gray = np.zeros((300, 300), np.float32)  # (H, W) light digit on dark, far off-centre
    gray[10:70, 250:280] = 1.0
    pixels, notices = preprocess_mnist(gray)
    rows, cols = np.nonzero(pixels > 0.05)
    assert notices == ()
    assert rows.max() - rows.min() + 1 in (20, 21, 22)  # the longer side fills the 20-pixel box
    assert cols.max() - cols.min() + 1 <= 14  # aspect ratio 2:1 kept
    row, col = centre_of_mass(pixels)
    assert abs(row - 13.5) <= 0.5 and abs(col - 13.5) <= 0.5


def test_decoded_image_keeps_hash_and_size():
    decoded = decode_image(GOOD_PNG)
    assert decoded.original_size == (96, 80) and decoded.display.shape == (80, 96)
    assert decoded.sha256 == __import__("hashlib").sha256(GOOD_PNG).hexdigest()


def test_pixels_from_array():
    as_bytes = np.full((28, 28), 255, np.uint8)
    assert pixels_from_array(as_bytes).max() == 1.0
    with pytest.raises(InputError, match="28 × 28"):
        pixels_from_array(np.zeros((32, 32)))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        pixels_from_array(np.full((28, 28), 2.0))


# -------------------------------------------------------------- fuzzing

_SAMPLES = [
    GOOD_PNG,
    encode(digit_image(), "JPEG"),
    encode(digit_image(), "GIF"),
    encode(digit_image(), "BMP"),
    encode(digit_image(), "WEBP"),
]
_MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 "]


def _decodes_or_refuses(data: bytes) -> None:
    try:
        result = decode_image(data)
    except InputError as exc:
        assert str(exc)
    else:
        assert result.pixels.shape == (28, 28)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(_MAGIC), body=st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_input_error(prefix, body):
    _decodes_or_refuses(prefix + body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(_SAMPLES),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    cut=st.floats(0.05, 1.0),
)
def test_damaged_images_never_raise_anything_but_input_error(sample, edits, cut):
    data = bytearray(sample[: max(1, int(len(sample) * cut))])
    for where, value in edits:
        data[int(where * len(data))] = value
    _decodes_or_refuses(bytes(data))


# ------------------------------------------------------------------ text


@pytest.mark.parametrize("text", ["", "   ", "\n\t \u3000", "\x00\x01", "\u200b\u200b"])
def test_empty_text_is_refused(text):
    with pytest.raises(InputError, match="empty"):
        validate_text(text)


def test_text_over_the_limit_is_refused_with_the_limit():
    with pytest.raises(InputError, match="1,001 characters long; the limit is 1,000"):
        validate_text("a" * 1001)
    assert validate_text("a" * 1000) == "a" * 1000
    with pytest.raises(InputError, match="limit is 10"):
        validate_text("x" * 2_000_000, max_chars=10)


def test_control_characters_are_stripped_but_newline_and_tab_kept():
    assert validate_text("a\x00b\x1bc\x7fd\x85e\tf\ng") == "abcde\tf\ng"
    assert validate_text("one\r\ntwo\rthree") == "one\ntwo\nthree"


def test_text_is_nfc_normalised():
    assert validate_text("e\u0301") == "\u00e9"


@pytest.mark.parametrize(
    "text",
    [
        "I love this 😀👍🏽 👩‍👩‍👧",
        "مرحبا بالعالم",
        "שלום עולם",
        "<script>alert('x')</script>",
        "[click](javascript:alert(1)) **bold** <img src=x onerror=alert(1)>",
    ],
)
def test_emoji_scripts_and_markup_pass_through_unchanged(text):
    assert validate_text(text) == text


@pytest.mark.parametrize(
    "name, label",
    [
        ("digit.png", "digit.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ada\\Pictures\\seven.jpg", "seven.jpg"),
        ("evil\x00\n\x1b[31m.png", "evil[31m.png"),
        ("\u202egnp.exe", "gnp.exe"),
        ("", "unnamed file"),
    ],
)
def test_safe_filename_label(name, label):
    assert safe_filename_label(name) == label


def test_long_filename_label_is_truncated_to_80():
    label = safe_filename_label("x" * 500 + ".png")
    assert len(label) == 80 and label.endswith("…")


def test_inputs_and_store_import_neither_streamlit_nor_torch():
    code = "import sys, app.runtime.inputs, app.runtime.images, app.runtime.store; print(sorted({'streamlit', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
