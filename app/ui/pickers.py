"""Pickers: the model, the input (a held-out digit by class, or an upload), an index, a second digit.

Each is seeded from the page's view through :class:`app.ui.session.WidgetKeys`, and takes a
``host``: ``st`` (the controls are drawn) or the page's :class:`app.ui.settings.SettingsSummary`
(a share link as opened: the values are listed).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from analyzers import ANALYZERS
from app.links.codec import InputRef
from app.runtime.familiarity import Familiarity, familiarity
from app.runtime.images import decode_image
from app.runtime.inputs import InputError, safe_filename_label
from app.runtime.models import heldout_split, sample_pixels
from app.ui import messages, session
from app.ui.results import attempt
from model_zoo import get_spec

_log = logging.getLogger(__name__)
THUMB_SCALE = 5  # 28 px -> 140 px, nearest neighbour: crisp pixels


def model_label(name: str) -> str:
    """A model's menu label: its name and family (and where it comes from when it is not the zoo's)."""
    spec = get_spec(name)
    source = {"folder": " · your folder", "plugin": " · plugin"}.get(spec.source, "")
    return f"{name} · {spec.family}{source}"


def method_label(name: str) -> str:
    """An analyzer's menu label (its human name)."""
    entry = ANALYZERS.get(name)
    return entry.label if entry else name


def thumbnail(pixels: np.ndarray, scale: int = THUMB_SCALE) -> np.ndarray:
    """A (28, 28) image in [0, 1] as uint8, enlarged by pixel repetition (no blur)."""
    a = np.clip(np.asarray(pixels, dtype=np.float32), 0, 1)
    return (np.kron(a, np.ones((scale, scale), dtype=np.float32)) * 255).astype(np.uint8)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PickedInput:
    """The digit a view analyses: its pixels, its reference for the URL, and a label for people.

    Without a valid input (nothing uploaded yet, or the upload was refused) ``pixels`` is None and
    ``problem`` says why: the page then shows that instead of any result (:func:`no_input`).
    """

    pixels: np.ndarray | None  # (28, 28) float32 in [0, 1]
    ref: InputRef
    label: str
    problem: str = ""

    @property
    def ready(self) -> bool:
        """Whether there is a digit to analyse."""
        return self.pixels is not None


NOTHING_UPLOADED = ("Nothing uploaded yet: upload an image of a digit (PNG, JPEG, WebP, BMP or GIF, up to 5 MB), "
                    "or choose a held-out digit.")


def no_input(*picked: PickedInput) -> bool:
    """True, after saying why in the results area, when one of the inputs is not ready (show no result then)."""
    missing = [p.problem for p in picked if not p.ready]
    for problem in missing:
        messages.info(problem)
    return bool(missing)


SOURCES = ("Held-out digit", "Upload")


def input_picker(keys: session.WidgetKeys, ref: InputRef, name: str = "", label: str = "Input",
                 host: Any = st) -> PickedInput:
    """Choose a held-out digit (browse by class) or upload an image; seeded from ``ref``.

    ``name`` keeps the widgets of a second picker on the same page apart (e.g. ``name="b"``);
    ``host`` is ``st`` or the page's :class:`widgets.SettingsSummary` (see :func:`settings`).
    """
    w = f"{name}." if name else ""
    source = host.radio(label, SOURCES, horizontal=True,
                        key=keys.key(f"{w}source", SOURCES[1] if ref.upload else SOURCES[0], SOURCES))
    if source == SOURCES[1]:
        return _upload_picker(keys, ref, w, host)
    return _sample_picker(keys, ref, w, host)


def _sample_picker(keys: session.WidgetKeys, ref: InputRef, w: str, host: Any) -> PickedInput:
    y = heldout_split().y_heldout
    classes = list(range(10))
    digit = host.selectbox("Digit class", classes, key=keys.key(f"{w}digit", int(y[ref.sample]), classes))
    indices = [int(i) for i in np.flatnonzero(y == digit)]
    sample = host.select_slider("Example", indices, key=keys.key(f"{w}sample", ref.sample, indices),
                                format_func=lambda i: f"#{i}")
    pixels = sample_pixels(sample)
    host.image(thumbnail(pixels), caption=f"held-out #{sample}, labelled {digit}", width=140)
    return PickedInput(pixels, InputRef(sample=sample), f"held-out #{sample}")


def _upload_picker(keys: session.WidgetKeys, ref: InputRef, w: str, host: Any) -> PickedInput:
    data = session.current()
    file = host.file_uploader("Image of a digit", key=keys.name(f"{w}upload"),
                              help="PNG, JPEG, WebP, BMP or GIF, up to 5 MB. Dark-on-light digits are inverted.")
    sha = ref.upload
    if file is not None:
        raw = file.getvalue()
        sha = hashlib.sha256(raw).hexdigest()
        if sha not in data.uploads:
            try:
                with st.spinner("Reading the image…"):
                    decoded = decode_image(raw)
            except InputError as e:
                messages.error(str(e))
                return PickedInput(None, ref, "", f"The uploaded file was not used: {e} Upload another image, or "
                                                  "choose a held-out digit.")
            data.remember_upload(sha, decoded, safe_filename_label(file.name))
    if not sha or sha not in data.uploads:
        host.caption("Nothing uploaded yet.")
        return PickedInput(None, ref, "", NOTHING_UPLOADED)
    decoded, name = data.uploads[sha], data.upload_names.get(sha, "upload")
    _show_upload(decoded, name, host)
    # The label goes into share titles, which everyone sees on Home: never the person's filename.
    return PickedInput(np.asarray(decoded.pixels, dtype=np.float32), InputRef(sample=ref.sample, upload=sha),
                       f"upload {sha[:8]}")


def _show_upload(decoded: Any, name: str, host: Any) -> None:
    host.text(name)  # the browser's filename, literally
    before, after = host.columns(2)
    before.image(np.clip(decoded.display, 0, 1), caption=f"as uploaded ({decoded.format})", width=120)
    after.image(thumbnail(decoded.pixels, 4), caption="as the model sees it (28 × 28)", width=120)
    for notice in decoded.notices:
        host.caption(messages.escape(notice))
    readout, problem = familiarity_readout(decoded.pixels)
    if readout is None:
        host.caption(messages.escape(f"Could not compare this image with the training digits: {problem}"))
    elif readout.unusual:
        messages.warning(readout.sentence())  # shown on a share link as opened too, beside its settings
    else:
        host.caption(messages.escape(readout.sentence()))


def familiarity_readout(pixels: np.ndarray) -> tuple[Familiarity | None, str | None]:
    """How an upload compares with the training digits (:mod:`app.runtime.familiarity`), under a spinner
    when it really runs: (readout, None), or (None, why not). Never raises into the page."""
    try:
        return attempt("Comparing the image with the training digits…", lambda: familiarity(pixels))
    except Exception:  # noqa: BLE001 - a bug: the upload still shows and is analysed; the traceback is logged
        _log.exception("the familiarity readout failed")
        return None, "something went wrong (the details are in the server log)."


# --------------------------------------------------------------------------- choices


def model_picker(keys: session.WidgetKeys, models: Sequence[str], seed: str, label: str = "Model",
                 host: Any = st) -> str:
    """A select box over ``models``, seeded from the view."""
    return host.selectbox(label, list(models), key=keys.key("model", seed, list(models)),
                          format_func=model_label)


def index_picker(keys: session.WidgetKeys, name: str, label: str, seed: int, count: int, *, opened: bool,
                 host: Any = st, first: int = 0) -> int:
    """Choose an index below ``count`` (shown from ``first``); a link's index that does not exist is reported."""
    options = list(range(count))
    if opened and seed not in options:
        messages.error(f"This model has no {label} {seed + first} (it has {first} to {count - 1 + first}); "
                       f"showing {label} {first}.")
    return host.selectbox(label.capitalize(), options, key=keys.key(name, seed, options),
                          format_func=lambda i: str(i + first))


def heldout_picker(keys: session.WidgetKeys, seed: int, label: str, host: Any = st) -> int:
    """A held-out digit chosen by class, then example (for a second input, beside :func:`input_picker`)."""
    y = heldout_split().y_heldout
    classes = list(range(10))
    cls = host.selectbox(f"{label}: digit class", classes, key=keys.key("other.digit", int(y[seed]), classes))
    indices = [int(i) for i in np.flatnonzero(y == cls)]
    return host.select_slider(f"{label}: example", indices, key=keys.key("other.sample", seed, indices),
                              format_func=lambda i: f"#{i}")


# --------------------------------------------------------------------------- users' models (issue 17)

MODEL_UPLOAD_HINT = "PNG, JPEG, WebP, BMP or GIF, up to 5 MB; prepared as the model's folder says (size, crop, colour)."


def model_upload_key(raw_sha: str, model: str) -> str:
    """The session key (and the link's ``upload``) of an upload prepared for ``model``: one file gives each model its
    own preprocessing, so the key is the sha256 of the file's sha256 and the model's name."""
    return hashlib.sha256(f"{raw_sha}:{model}".encode()).hexdigest()


def model_image_picker(keys: session.WidgetKeys, ref: InputRef, model: str, name: str = "",
                       host: Any = st) -> PickedInput:
    """Upload an image for a user's image model (any size, RGB or grey), prepared by the model's own
    preprocessing and shown before and after; ``pixels`` is (1, C, H, W) in [0, 1]."""
    from app.runtime.images import decode_for_model
    from app.runtime.inputs import image_size_label
    from app.runtime.models import loaded_model

    w = f"{name}." if name else ""
    spec = get_spec(model)
    data = session.current()
    file = host.file_uploader(f"Image for {model} ({image_size_label(spec)})", key=keys.name(f"{w}upload.user"),
                              help=MODEL_UPLOAD_HINT)
    sha = ref.upload
    if file is not None:
        raw = file.getvalue()
        sha = model_upload_key(hashlib.sha256(raw).hexdigest(), model)
        if sha not in data.uploads:
            try:
                with st.spinner("Reading the image…"):
                    decoded = decode_for_model(raw, loaded_model(model).model.preprocess)
            except InputError as e:
                messages.error(str(e))
                return PickedInput(None, ref, "", f"The uploaded file was not used: {e} Upload another image.")
            data.remember_upload(sha, decoded, safe_filename_label(file.name))
    decoded = data.uploads.get(sha) if sha else None
    shape = tuple(spec.input.shape)
    if decoded is None or tuple(np.shape(decoded.pixels))[-len(shape):] != shape:
        host.caption("Nothing uploaded yet.")
        return PickedInput(None, ref, "", f"Nothing uploaded yet: upload an image for {model} ({MODEL_UPLOAD_HINT})")
    pixels = np.asarray(decoded.pixels, dtype=np.float32).reshape(1, *shape)
    host.text(data.upload_names.get(sha, "upload"))
    before, after = host.columns(2)
    before.image(np.clip(decoded.display, 0, 1), caption=f"as uploaded ({decoded.format})", width=120)
    shown = pixels[0, 0] if shape[0] == 1 else np.moveaxis(pixels[0], 0, -1)
    after.image(np.clip(shown, 0, 1), caption=f"as the model sees it ({image_size_label(spec)})", width=120)
    for notice in decoded.notices:
        host.caption(messages.escape(notice))
    return PickedInput(pixels, InputRef(sample=ref.sample, upload=sha), f"upload {sha[:8]}")


def text_picker(keys: session.WidgetKeys, seed: str, model: str, label: str = "Text", host: Any = st,
                max_chars: int = 4000) -> tuple[str | None, str]:
    """A text area for a text classifier, seeded from the view: (the validated text, "") or (None, why not)."""
    from app.runtime.inputs import validate_text

    raw = host.text_area(label, key=keys.key("text", seed), max_chars=max_chars, height=100,
                         help=f"Shown exactly as typed; {model} reads up to its tokenizer's limit (longer text is "
                              "cut there).")
    try:
        return validate_text(raw, max_chars=max_chars), ""
    except InputError as e:
        return None, f"The text was not used: {e}"
