"""Uploaded bytes -> a digit the models can read, decided by decoding the content, never by the filename.

What a file is gets decided by decoding its content with an explicit list of Pillow decoders,
never by its filename or MIME type; Pillow's limits guard against decompression bombs. The
picture is then framed like MNIST (:func:`app.runtime.inputs.preprocess_mnist`). Everything a
person can get wrong surfaces as :class:`~app.runtime.inputs.InputError`, whose message says
what was wrong and what to do. No streamlit and no torch here: the CLI and the pages share it.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps

from app.runtime.inputs import InputError, preprocess_mnist

_MB = 1024 * 1024
MAX_UPLOAD_BYTES = 5 * _MB
MAX_PIXELS = 4096 * 4096
MAX_ASPECT_RATIO = 20.0
PREVIEW_SIDE = 256  # the longest side of the kept "as uploaded" preview, in pixels
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")

_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF"}
_UPLOAD_HINT = "Upload a PNG, JPEG, WebP, BMP or GIF image."
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

NOTICE_ROTATED = "Rotated according to EXIF orientation."
NOTICE_TRANSPARENT = "Transparent areas treated as white."
NOTICE_BAD_EXIF = "Could not read the EXIF orientation: shown as stored."


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """An uploaded image, decoded and prepared for the MNIST-style models.

    Only what a view needs is kept: the 28x28 pixels and a bounded preview, never the full
    resolution (a 4096 x 4096 upload would otherwise hold 64 MB for as long as its session lives).

    Attributes:
        display: (h, w) float32 grayscale in [0, 1], as a viewer sees the file, area-averaged
            down so that its longest side is at most :data:`PREVIEW_SIDE` (smaller files as they are).
        pixels: (28, 28) float32 in [0, 1], white digit on black (MNIST convention).
        format: the decoder that read it ("PNG", "JPEG", "WEBP", "BMP", "GIF").
        original_size: (width, height) as stored in the file.
        notices: what was done to the image on the way, for people to read.
        sha256: hex sha256 of the uploaded bytes (a cache and share key).
    """

    display: np.ndarray
    pixels: np.ndarray
    format: str
    original_size: tuple[int, int]
    notices: tuple[str, ...]
    sha256: str


def configure_pillow() -> None:
    """Apply zooscope's Pillow safety limits; calling it again changes nothing.

    Caps the pixel count, turns DecompressionBombWarning into an error and
    refuses truncated files. :func:`decode_image` also checks the declared
    size itself, so it stays safe if something resets these globals.
    """
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    # filterwarnings(append=False) removes an identical filter before inserting it.
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def decode_image(data: bytes) -> DecodedImage:
    """Decode an uploaded image and prepare it as a 28x28 MNIST-style digit.

    Args:
        data: the uploaded file's bytes (bytes, bytearray or memoryview).

    Returns:
        The decoded image: the grayscale view, the 28x28 pixels and notices.

    Raises:
        InputError: for anything wrong with the file, with a message for people.
        TypeError: if ``data`` is not bytes-like (a bug in the caller).
    """
    data = _as_bytes(data)
    _check_upload_size(len(data))
    gray, fmt, size, notices = _decode_safely(data)  # (H, W) at full resolution
    pixels, more = preprocess_mnist(gray)  # (28, 28)
    display = preview(gray)  # (h, w), longest side <= PREVIEW_SIDE
    del gray  # the full-resolution array goes now, not when the caller lets go of this frame
    return DecodedImage(
        display=display,
        pixels=pixels,
        format=fmt,
        original_size=size,
        notices=notices + more,
        sha256=hashlib.sha256(data).hexdigest(),
    )


@dataclass(frozen=True, eq=False)
class ModelImage:
    """An upload prepared for a user's image model by that model's own preprocessing (its folder's processor).

    Attributes:
        display: (h, w, 3) float32 RGB in [0, 1] as a viewer sees the file, longest side <= PREVIEW_SIDE.
        pixels: (C, H, W) float32 in [0, 1] at the model's size, not normalised (the model does that).
        format, original_size, notices, sha256: as :class:`DecodedImage`.
    """

    display: np.ndarray
    pixels: np.ndarray
    format: str
    original_size: tuple[int, int]
    notices: tuple[str, ...]
    sha256: str


def decode_for_model(data: bytes, preprocess: Callable[[Image.Image], Any]) -> ModelImage:
    """Decode an upload under the same limits as :func:`decode_image`, then prepare it with ``preprocess``
    (a PIL RGB image -> (C, H, W) in [0, 1], e.g. the adapter's ``preprocess``): colour kept, transparency on
    white, EXIF orientation applied. Raises InputError for anything wrong with the file."""
    data = _as_bytes(data)
    _check_upload_size(len(data))
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
            _check_declared_size(img.size)
            fmt, notices = img.format or "image", _frame_notices(img, img.format or "image")
            img.load()
            upright, more = _apply_orientation(img)
            rgb, alpha = _as_rgb(upright)
            size = img.size
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(_bomb_message(str(exc))) from None
    except Image.UnidentifiedImageError:
        raise InputError(_unidentified_message(data)) from None
    except Exception as exc:  # Pillow's many errors on damaged files
        raise InputError(_damaged_message(data, exc)) from exc
    with rgb:
        pixels = np.asarray(preprocess(rgb), dtype=np.float32)  # (C, H, W)
        shown = rgb.copy()
        shown.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        display = np.asarray(shown, dtype=np.float32) / 255.0
    return ModelImage(display, pixels, fmt, size, notices + more + alpha, hashlib.sha256(data).hexdigest())


def _as_rgb(img: Image.Image) -> tuple[Image.Image, tuple[str, ...]]:
    """An RGB copy, transparent areas on white."""
    if img.has_transparency_data:
        with img.convert("RGBA") as rgba, Image.new("RGBA", rgba.size, (255, 255, 255, 255)) as white:
            flat = Image.alpha_composite(white, rgba)
            return flat.convert("RGB"), (NOTICE_TRANSPARENT,)
    if img.mode in _SIXTEEN_BIT_MODES:
        gray = Image.fromarray((_scaled_integer_gray(img) * 255).astype(np.uint8))
        return gray.convert("RGB"), ()
    return img.convert("RGB"), ()


def preview(gray: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    """A grayscale picture area-averaged down so its longest side is at most ``side`` pixels.

    Blocks of f x f pixels (f the smallest integer that fits) are averaged; the last row and
    column of blocks may be narrower. Pictures already small enough come back as they are.
    No full-size temporary is made: rows are summed into a (h, W) array first.
    """
    height, width = gray.shape
    f = -(-max(height, width) // side)  # ceil
    if f <= 1:
        return gray
    rows, cols = np.arange(0, height, f), np.arange(0, width, f)
    sums = np.add.reduceat(np.add.reduceat(gray, rows, axis=0), cols, axis=1)  # (h, w)
    counts = np.outer(np.diff(rows, append=height), np.diff(cols, append=width))  # (h, w) pixels per block
    return (sums / counts).astype(np.float32)


def _as_bytes(data: bytes) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"decode_image expects the file's bytes, got {type(data).__name__}")


def _check_upload_size(n_bytes: int) -> None:
    if n_bytes == 0:
        raise InputError(f"The file is empty (0 bytes). {_UPLOAD_HINT}")
    if n_bytes > MAX_UPLOAD_BYTES:
        raise InputError(
            f"This file is {n_bytes / _MB:.1f} MB; the limit is {MAX_UPLOAD_BYTES / _MB:g} MB. "
            "Upload a smaller image."
        )


def _decode_safely(data: bytes) -> tuple[np.ndarray, str, tuple[int, int], tuple[str, ...]]:
    """Run the decoder; this is the boundary where every failure becomes an InputError."""
    try:
        return _decode(data)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(_bomb_message(str(exc))) from None
    except Image.UnidentifiedImageError:
        raise InputError(_unidentified_message(data)) from None
    except MemoryError:
        raise InputError("There is not enough memory to decode this image right now. Try a smaller image.") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, ... on damaged files
        raise InputError(_damaged_message(data, exc)) from exc


def _decode(data: bytes) -> tuple[np.ndarray, str, tuple[int, int], tuple[str, ...]]:
    with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
        _check_declared_size(img.size)  # before any pixel is decoded
        fmt = img.format or "image"
        notices = _frame_notices(img, fmt)
        img.load()
        upright, more = _apply_orientation(img)
        try:
            gray, alpha_notices = _display_gray(upright)  # (H, W)
        finally:
            if upright is not img:
                upright.close()  # the turned copy's pixels go now; ``with`` closes the original
        return gray, fmt, img.size, notices + more + alpha_notices


def _check_declared_size(size: tuple[int, int]) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise InputError(f"This image declares a size of {width} × {height} pixels. {_UPLOAD_HINT}")
    if width * height > MAX_PIXELS:
        raise InputError(
            f"This image is {width:,} × {height:,} pixels ({width * height / 1e6:,.1f} megapixels); "
            f"the limit is {MAX_PIXELS / 1e6:.1f} megapixels (4096 × 4096). "
            "Upload a smaller image."
        )
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise InputError(
            f"This image is {width:,} × {height:,} pixels, a {ratio:.0f}:1 strip; shapes up to "
            f"{MAX_ASPECT_RATIO:.0f}:1 are accepted. Crop it closer to the digit."
        )


def _bomb_message(pillow_message: str) -> str:
    match = re.search(r"\((\d+) pixels\)", pillow_message)
    declared = f"{int(match.group(1)) / 1e6:,.1f} megapixels" if match else "too many pixels"
    return (
        f"This image declares {declared}; the limit is {MAX_PIXELS / 1e6:.1f} megapixels "
        "(4096 × 4096). Upload a smaller image."
    )


def _frame_notices(img: Image.Image, fmt: str) -> tuple[str, ...]:
    n_frames = int(getattr(img, "n_frames", 1))
    if n_frames <= 1:
        return ()
    img.seek(0)
    return (f"Animated {_FORMAT_NAMES.get(fmt, fmt)}: used the first of {n_frames} frames.",)


def _apply_orientation(img: Image.Image) -> tuple[Image.Image, tuple[str, ...]]:
    """Turn the loaded image the way a viewer shows it, following its EXIF orientation."""
    try:
        orientation = img.getexif().get(0x0112, 1)
        rotated = isinstance(orientation, int) and 2 <= orientation <= 8
        upright = ImageOps.exif_transpose(img) if rotated else img  # no copy of an image that needs no turn
    except Exception:  # damaged EXIF should not cost people their otherwise good image
        return img, (NOTICE_BAD_EXIF,)
    return upright, (NOTICE_ROTATED,) if rotated else ()


def _display_gray(img: Image.Image) -> tuple[np.ndarray, tuple[str, ...]]:
    """Grayscale in [0, 1] as a viewer sees it: alpha on white, CMYK and 16-bit handled."""
    if img.mode in _SIXTEEN_BIT_MODES:
        return _scaled_integer_gray(img), ()
    if img.has_transparency_data:
        with img.convert("RGBA") as rgba, Image.new("RGBA", rgba.size, (255, 255, 255, 255)) as white, \
                Image.alpha_composite(white, rgba) as flat:
            return _unit_float(flat), (NOTICE_TRANSPARENT,)  # (H, W)
    if img.mode in ("L", "1", "RGB"):
        return _unit_float(img), ()  # (H, W)
    with img.convert("RGB") as rgb:  # CMYK, P, YCbCr, ...
        return _unit_float(rgb), ()


def _unit_float(img: Image.Image) -> np.ndarray:
    """(H, W) float32 in [0, 1] from the image's 8-bit luminance, without a second full-size float copy."""
    with img.convert("L") as gray:
        values = np.asarray(gray, dtype=np.float32)  # (H, W)
    values /= 255.0
    return values


def _scaled_integer_gray(img: Image.Image) -> np.ndarray:
    """Scale 16-bit (or 32-bit integer) grayscale to [0, 1] instead of clipping it to 8 bits."""
    stored = np.asarray(img)  # (H, W) integers
    low, high = float(stored.min()), float(stored.max())
    values = stored.astype(np.float32)  # (H, W), the one full-size float copy
    del stored
    if low >= 0 and high <= 65535:
        values /= 65535.0
    else:
        values -= low
        values /= max(high - low, 1.0)
    return values


_MAGIC_FORMATS = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)

_UNSUPPORTED_MAGIC = (
    (b"%PDF", "PDF is not supported. Export the page as a PNG and upload that."),
    (b"II*\x00", "TIFF is not supported. Convert it to PNG and upload that."),
    (b"MM\x00*", "TIFF is not supported. Convert it to PNG and upload that."),
    (b"PK\x03\x04", "This is a ZIP archive, not an image. Unpack it and upload one image."),
)


def _claimed_format(data: bytes) -> str | None:
    """The format the file's magic bytes claim, if it is one of ours."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _MAGIC_FORMATS if data.startswith(magic)), None)


def _unidentified_message(data: bytes) -> str:
    """Explain a file no allowed decoder recognised: markup, text, another format, or noise."""
    claimed = _claimed_format(data)
    if claimed is not None:
        return f"This {_FORMAT_NAMES[claimed]} file is damaged and could not be read. Re-export it and upload it again."
    for magic, message in _UNSUPPORTED_MAGIC:
        if data.startswith(magic):
            return message
    if data[4:8] == b"ftyp":
        return "HEIC/AVIF photos are not supported. Export the photo as JPEG or PNG and upload that."
    return _markup_message(data) or f"This file is not an image zooscope can read. {_UPLOAD_HINT}"


def _markup_message(data: bytes) -> str | None:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in head:
        return "SVG is not supported: it is a vector drawing, not pixels. Export it as a PNG and upload that."
    if head.startswith(b"<!doctype html") or b"<html" in head:
        return "This file is a web page (HTML), not an image. Save the image itself as PNG or JPEG and upload that."
    if head.startswith(b"<?xml"):
        return f"This file is XML, not an image. {_UPLOAD_HINT}"
    if _looks_like_text(data[:4096]):
        return f"This file is text, not an image. {_UPLOAD_HINT}"
    return None


def _looks_like_text(chunk: bytes) -> bool:
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(chunk) - 3:  # not just a character cut at the chunk's end
            return False
        text = chunk[: exc.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def _damaged_message(data: bytes, exc: Exception) -> str:
    name = _FORMAT_NAMES.get(_claimed_format(data) or "", "image")
    if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
        return f"This {name} file is incomplete (it ends too early). Upload the whole file again."
    return f"This {name} file is damaged and could not be decoded. Re-export it and upload it again."
