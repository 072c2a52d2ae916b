"""Inputs a person gives, validated: a digit framed like MNIST, and typed text.

Everything a person can get wrong surfaces as :class:`InputError`, whose message says what was
wrong and what to do. Uploaded files are decoded in :mod:`app.runtime.images`. No streamlit and
no torch here: the CLI and the pages share it.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
from PIL import Image

MNIST_SIDE = 28  # the frame, as in LeCun et al.'s MNIST
MNIST_BOX = 20  # the digit's bounding box inside the frame
_INK_THRESHOLD = 0.2  # share of the background-to-stroke range that counts as content
_MIN_CONTRAST = 0.05  # below this the image counts as blank
_LABEL_MAX_CHARS = 80

NOTICE_INVERTED = "Dark digit on light background: inverted."


class InputError(ValueError):
    """The input cannot be used; the message says what was wrong and what to do."""


# --------------------------------------------------------------------------- MNIST frame


def preprocess_mnist(gray: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Turn a grayscale picture of a digit into a 28x28 MNIST-style input.

    Like the original MNIST: light digit on dark, cropped to its content,
    fitted into a 20x20 box keeping its aspect ratio, and centred by centre
    of mass in a 28x28 frame. See http://yann.lecun.com/exdb/mnist/.

    Args:
        gray: (H, W) grayscale in [0, 1], as a viewer sees it.

    Returns:
        (28, 28) float32 in [0, 1], and notices about what was done.

    Raises:
        InputError: if the picture is blank or not a 2-D grayscale array.
    """
    gray = _as_gray_array(gray)  # (H, W)
    notices: tuple[str, ...] = ()
    if _is_dark_on_light(gray):
        gray = 1.0 - gray  # (H, W)
        notices = (NOTICE_INVERTED,)
    ink = _ink(gray)  # (H, W), background 0, strongest stroke 1
    digit = _fit_in_box(_crop_to_content(ink), MNIST_BOX)  # (h<=20, w<=20)
    return _centre_by_mass(digit, MNIST_SIDE), notices  # (28, 28)


def pixels_from_array(arr: np.ndarray) -> np.ndarray:
    """Check an array that is already a 28x28 digit and return it as float32 in [0, 1].

    uint8 arrays are read as 0..255; float arrays must already lie in [0, 1].
    """
    values = np.asarray(arr)
    if values.shape != (MNIST_SIDE, MNIST_SIDE):
        raise InputError(f"Expected a 28 × 28 array, got shape {values.shape}. Upload an image instead.")
    if values.dtype == np.uint8:
        return values.astype(np.float32) / 255.0  # (28, 28)
    pixels = values.astype(np.float32)  # (28, 28)
    if not np.isfinite(pixels).all() or pixels.min() < 0.0 or pixels.max() > 1.0:
        raise InputError("Pixel values must lie in [0, 1] (or 0..255 as uint8).")
    return pixels


def _as_gray_array(gray: np.ndarray) -> np.ndarray:
    values = np.asarray(gray, dtype=np.float32)
    if values.ndim != 2 or values.size == 0:
        raise InputError(f"Expected a 2-D grayscale image, got shape {values.shape}.")
    if not np.isfinite(values).all():
        raise InputError("The image contains invalid (NaN or infinite) values.")
    return np.clip(values, 0.0, 1.0)  # (H, W)


def _border(gray: np.ndarray) -> np.ndarray:
    """The outermost rows and columns, where the background shows."""
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])  # (2W + 2H,)


def _is_dark_on_light(gray: np.ndarray) -> bool:
    return float(np.median(_border(gray))) > 0.5


def _ink(gray: np.ndarray) -> np.ndarray:
    """Stretch so the background (the border's median) is 0 and the brightest stroke 1."""
    background = float(np.median(_border(gray)))
    peak = float(gray.max())
    if peak - background < _MIN_CONTRAST:
        raise InputError("The image is blank: no digit stands out from the background. Upload a picture of a digit.")
    return np.clip((gray - background) / (peak - background), 0.0, 1.0)  # (H, W)


def _crop_to_content(ink: np.ndarray) -> np.ndarray:
    mask = ink > _INK_THRESHOLD  # (H, W)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w)


def _fit_in_box(crop: np.ndarray, box: int) -> np.ndarray:
    """Resize so the longer side is ``box`` pixels, keeping the aspect ratio (Lanczos)."""
    height, width = crop.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # (w, h) for Pillow
    resized = Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)  # (h', w'), max side == box


def _centre_by_mass(digit: np.ndarray, side: int) -> np.ndarray:
    """Paste the digit into a side x side frame with its centre of mass at the frame's centre."""
    mass = float(digit.sum())
    if mass <= 0.0:
        raise InputError("The image is blank: no digit stands out from the background. Upload a picture of a digit.")
    rows, cols = np.indices(digit.shape)  # (h, w) each
    centre = (side - 1) / 2.0
    top = _clamp(round(centre - float((rows * digit).sum()) / mass), 0, side - digit.shape[0])
    left = _clamp(round(centre - float((cols * digit).sum()) / mass), 0, side - digit.shape[1])
    frame = np.zeros((side, side), dtype=np.float32)  # (28, 28)
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return frame


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


# --------------------------------------------------------------------------- text

_LINE_BREAKS = re.compile(r"\r\n?")

# Unicode category Cc except tab and newline, and lone surrogates (unencodable as UTF-8).
_UNWANTED_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")

# Everything above plus tab/newline and the bidi controls that can disguise a filename.
_UNWANTED_LABEL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def validate_text(s: str, *, max_chars: int = 1000) -> str:
    """Check text typed for a text model; return it without control characters, NFC-normalised.

    Newlines and tabs are kept (Windows and old Mac line breaks become
    ``\\n``); emoji, right-to-left scripts and markup pass through unchanged:
    showing the text literally is the page's job.

    Raises:
        InputError: if the text is empty or longer than ``max_chars``.
    """
    if not isinstance(s, str):
        raise InputError(f"Expected text, got {type(s).__name__}.")
    cleaned = unicodedata.normalize("NFC", _UNWANTED_TEXT.sub("", _LINE_BREAKS.sub("\n", s)))
    if not any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in cleaned):
        raise InputError("The text is empty. Type a sentence to analyse.")
    if len(cleaned) > max_chars:
        raise InputError(
            f"The text is {len(cleaned):,} characters long; the limit is {max_chars:,}. "
            "Shorten it and try again."
        )
    return cleaned


def safe_filename_label(name: str) -> str:
    """A short, harmless label for a browser-supplied filename; for display only, never a path."""
    base = re.split(r"[/\\]", str(name))[-1]
    base = unicodedata.normalize("NFC", _UNWANTED_LABEL.sub("", base)).strip()
    if len(base) > _LABEL_MAX_CHARS:
        base = base[: _LABEL_MAX_CHARS - 1] + "…"
    return base or "unnamed file"


# --------------------------------------------------------------------------- users' image models


def uses_model_preprocessing(spec) -> bool:
    """True when an image for ``spec`` is prepared by the model's own preprocessing (a user's folder or plugin,
    any size, RGB or grey) rather than framed like an MNIST digit (the zoo's 28x28 models)."""
    if spec.input.modality != "image":
        return False
    return bool(spec.extra.get("source")) or tuple(spec.input.shape) != (1, MNIST_SIDE, MNIST_SIDE)


def image_size_label(spec) -> str:
    """``3 × 224 × 224`` (RGB), for people."""
    c, h, w = (tuple(spec.input.shape) + (0, 0, 0))[:3]
    return f"{h} × {w} {'RGB' if c == 3 else 'grey' if c == 1 else f'{c}-channel'}"
