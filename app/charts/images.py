"""Digits as pictures: mosaics of many digits with crisp pixels, PNG bytes, and data URIs for tooltips.

Pure functions (no Streamlit): uint8 images out.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def mosaic(images: np.ndarray, pad: int = 2, scale: int = 2, background: float = 0.35,
           max_width: int | None = None) -> np.ndarray:
    """(R, C, h, w) images in [0, 1] as one uint8 picture, a grey ``pad`` between them, enlarged ``scale`` times.

    With ``max_width``, the enlargement shrinks (down to 1, by nearest-neighbour resampling when it
    is not a whole number) so that the picture fits that many pixels.
    """
    a = np.clip(np.asarray(images, dtype=np.float32), 0, 1)
    R, C, h, w = a.shape
    out = np.full((R * h + (R + 1) * pad, C * w + (C + 1) * pad), background, dtype=np.float32)
    for r in range(R):
        for c in range(C):
            top, left = pad + r * (h + pad), pad + c * (w + pad)
            out[top:top + h, left:left + w] = a[r, c]
    picture = (out * 255 + 0.5).astype(np.uint8)
    factor = float(scale) if not max_width else max(1.0, min(float(scale), max_width / picture.shape[1]))
    if factor == int(factor):
        return np.kron(picture, np.ones((int(factor), int(factor)), dtype=np.uint8)) if factor > 1 else picture
    size = (round(picture.shape[1] * factor), round(picture.shape[0] * factor))
    return np.asarray(Image.fromarray(picture, mode="L").resize(size, Image.Resampling.NEAREST))


def png_bytes(image: np.ndarray, optimize: bool = False) -> bytes:
    """A uint8 grey image as PNG bytes (``optimize``: smaller, about 3 times slower to encode)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L").save(buf, format="PNG", optimize=optimize)
    return buf.getvalue()


def digit_uri(pixels: np.ndarray, scale: int = 2) -> str:
    """A (28, 28) digit as a PNG data URI, enlarged ``scale`` times (for image tooltips)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(mosaic(np.asarray(pixels)[None, None], pad=0,
                                                                        scale=scale))).decode()
