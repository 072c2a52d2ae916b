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


# --------------------------------------------------------------------------- users' images (any size, RGB or grey)

MAX_GRID = 56  # cells a side of a heatmap over a large image: 224x224 -> 56x56 (3,136 cells, not 50,176)


def as_picture(pixels: np.ndarray) -> np.ndarray:
    """An image (C, H, W) or (H, W) in [0, 1] as (H, W) grey or (H, W, 3) RGB float32 for drawing."""
    a = np.clip(np.asarray(pixels, dtype=np.float32), 0, 1)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
    return a


def luminance(picture: np.ndarray) -> np.ndarray:
    """(H, W) grey from (H, W) or (H, W, 3) RGB (ITU-R 601 weights, as Pillow's "L")."""
    a = np.asarray(picture, dtype=np.float32)
    return a if a.ndim == 2 else a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def grid_factor(shape: tuple[int, int], max_grid: int = MAX_GRID) -> int:
    """Pixels a side of one heatmap cell: 1 up to ``max_grid`` a side, else the smallest that fits."""
    return max(1, -(-max(shape) // max_grid))


def pool(values: np.ndarray, factor: int, how: str = "sum") -> np.ndarray:
    """(H, W) in blocks of factor x factor (the last ones narrower): their sum (attributions add) or mean."""
    if factor <= 1:
        return np.asarray(values, dtype=np.float64)
    a = np.asarray(values, dtype=np.float64)
    rows, cols = np.arange(0, a.shape[0], factor), np.arange(0, a.shape[1], factor)
    sums = np.add.reduceat(np.add.reduceat(a, rows, axis=0), cols, axis=1)
    if how == "sum":
        return sums
    counts = np.outer(np.diff(rows, append=a.shape[0]), np.diff(cols, append=a.shape[1]))
    return sums / counts


def picture_uri(picture: np.ndarray, top: float = 1.0) -> str:
    """An (H, W) grey or (H, W, 3) RGB picture in [0, 1] as a PNG data URI, scaled to ``top`` brightness."""
    a = (np.clip(np.asarray(picture, dtype=np.float64), 0, 1) * top * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a, mode="RGB" if a.ndim == 3 else "L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
