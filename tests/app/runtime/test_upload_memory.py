"""An upload keeps only what a view needs: the 28x28 pixels and a bounded preview, never its full resolution."""

from __future__ import annotations

import dataclasses
import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.runtime.images import MAX_UPLOAD_BYTES, PREVIEW_SIDE, decode_image, preview

SIDE = 4096  # the largest upload accepted (16.7 Mpixels)


def big_digit_png(mode: str) -> bytes:
    """A 4096 x 4096 PNG of a dark 7 on light paper: tens of kilobytes, 64 MB as float32."""
    paper, ink = {"L": (255, 0), "RGBA": ((0, 0, 0, 0), (0, 0, 0, 255)), "I;16": (65535, 0)}[mode]
    img = Image.new(mode, (SIDE, SIDE), paper)
    draw = ImageDraw.Draw(img)
    draw.line((800, 600, 3300, 600), fill=ink, width=300)
    draw.line((3300, 600, 1700, 3500), fill=ink, width=300)
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def arrays_held(decoded) -> dict[str, np.ndarray]:
    return {f.name: getattr(decoded, f.name) for f in dataclasses.fields(decoded)
            if isinstance(getattr(decoded, f.name), np.ndarray)}


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16"])  # 8-bit, alpha composited on white, 16-bit scaled
def test_a_4096_pixel_upload_keeps_a_bounded_preview_and_no_full_resolution_array(mode):
    data = big_digit_png(mode)
    assert len(data) < MAX_UPLOAD_BYTES // 20  # a tiny file...
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        decoded = decode_image(data)
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    held = arrays_held(decoded)
    assert set(held) == {"display", "pixels"}
    assert decoded.display.shape == (PREVIEW_SIDE, PREVIEW_SIDE) and decoded.display.dtype == np.float32
    assert decoded.pixels.shape == (28, 28)
    assert all(max(a.shape) <= PREVIEW_SIDE and a.base is None for a in held.values())  # no view into a big array
    assert sum(a.nbytes for a in held.values()) <= PREVIEW_SIDE**2 * 4 + 28 * 28 * 4
    # ...that leaves nothing big behind anywhere (numpy reports its buffers to tracemalloc): 64 MB before
    assert kept - before < 2 * 2**20
    assert decoded.original_size == (SIDE, SIDE)
    assert decoded.display[8, 8] > 0.95 and decoded.display[600 * PREVIEW_SIDE // SIDE, 128] < 0.05  # paper, ink


def test_the_preview_is_the_mean_of_each_block_with_narrower_blocks_at_the_edges():
    gray = np.random.default_rng(0).random((1001, 700), dtype=np.float32)  # (H, W)
    small = preview(gray)
    assert small.shape == (251, 175) and small.dtype == np.float32  # blocks of 4 x 4, the last row of blocks 1 high
    assert small[0, 0] == pytest.approx(gray[:4, :4].mean(), rel=1e-5)
    assert small[-1, -1] == pytest.approx(gray[1000:, 696:].mean(), rel=1e-5)
    assert small[100, 30] == pytest.approx(gray[400:404, 120:124].mean(), rel=1e-5)


def test_a_picture_within_the_preview_size_is_kept_as_it_is():
    gray = np.linspace(0, 1, PREVIEW_SIDE * 100, dtype=np.float32).reshape(100, PREVIEW_SIDE)
    assert preview(gray) is gray
