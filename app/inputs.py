"""Uploaded bytes and typed text -> validated model inputs.

What a file is gets decided by decoding its content with an explicit list of
Pillow decoders, never by its filename or MIME type. Everything a person can
get wrong surfaces as :class:`InputError`, whose message says what was wrong
and what to do. No streamlit and no torch here: the CLI and the pages share it.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

__all__ = [
    "ALLOWED_FORMATS",
    "MAX_ASPECT_RATIO",
    "MAX_PIXELS",
    "MAX_UPLOAD_BYTES",
    "MNIST_BOX",
    "MNIST_SIDE",
    "NOTICE_BAD_EXIF",
    "NOTICE_INVERTED",
    "NOTICE_ROTATED",
    "NOTICE_TRANSPARENT",
    "DecodedImage",
    "InputError",
    "configure_pillow",
    "decode_image",
    "pixels_from_array",
    "preprocess_mnist",
    "safe_filename_label",
    "validate_text",
]

_MB = 1024 * 1024
MAX_UPLOAD_BYTES = 5 * _MB
MAX_PIXELS = 4096 * 4096
MAX_ASPECT_RATIO = 20.0
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
MNIST_SIDE = 28  # the frame, as in LeCun et al.'s MNIST
MNIST_BOX = 20  # the digit's bounding box inside the frame

_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF"}
_UPLOAD_HINT = "Upload a PNG, JPEG, WebP, BMP or GIF image."
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_INK_THRESHOLD = 0.2  # share of the background-to-stroke range that counts as content
_MIN_CONTRAST = 0.05  # below this the image counts as blank
_LABEL_MAX_CHARS = 80

NOTICE_INVERTED = "Dark digit on light background: inverted."
NOTICE_ROTATED = "Rotated according to EXIF orientation."
NOTICE_TRANSPARENT = "Transparent areas treated as white."
NOTICE_BAD_EXIF = "Could not read the EXIF orientation: shown as stored."


class InputError(ValueError):
    """The input cannot be used; the message says what was wrong and what to do."""


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """An uploaded image, decoded and prepared for the MNIST-style models.

    Attributes:
        display: (H, W) float32 grayscale in [0, 1], as a viewer sees the file.
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


configure_pillow()


# ---------------------------------------------------------------- images


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
    display, fmt, size, notices = _decode_safely(data)
    pixels, more = preprocess_mnist(display)  # (28, 28)
    return DecodedImage(
        display=display,
        pixels=pixels,
        format=fmt,
        original_size=size,
        notices=notices + more,
        sha256=hashlib.sha256(data).hexdigest(),
    )


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
        display, alpha_notices = _display_gray(upright)  # (H, W)
        return display, fmt, img.size, notices + more + alpha_notices


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
        upright = ImageOps.exif_transpose(img)
    except Exception:  # damaged EXIF should not cost people their otherwise good image
        return img, (NOTICE_BAD_EXIF,)
    rotated = isinstance(orientation, int) and 2 <= orientation <= 8
    return upright, (NOTICE_ROTATED,) if rotated else ()


def _display_gray(img: Image.Image) -> tuple[np.ndarray, tuple[str, ...]]:
    """Grayscale in [0, 1] as a viewer sees it: alpha on white, CMYK and 16-bit handled."""
    if img.mode in _SIXTEEN_BIT_MODES:
        return _scaled_integer_gray(img), ()
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        gray = Image.alpha_composite(white, rgba).convert("L")
        return np.asarray(gray, dtype=np.float32) / 255.0, (NOTICE_TRANSPARENT,)  # (H, W)
    if img.mode not in ("L", "1", "RGB"):
        img = img.convert("RGB")  # CMYK, P, YCbCr, ...
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0, ()  # (H, W)


def _scaled_integer_gray(img: Image.Image) -> np.ndarray:
    """Scale 16-bit (or 32-bit integer) grayscale to [0, 1] instead of clipping it to 8 bits."""
    values = np.asarray(img).astype(np.float64)  # (H, W)
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high <= 65535:
        return (values / 65535.0).astype(np.float32)
    return ((values - low) / max(high - low, 1.0)).astype(np.float32)


# ------------------------------------------------------- refusal messages

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


# ----------------------------------------------------------- MNIST frame


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


# ------------------------------------------------------------------- text

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
