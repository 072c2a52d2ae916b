"""Share links: save a view with its input and results in one store transaction, and reopen it.

A saved analysis holds:

- meta: ``page`` (which page shows it), ``view`` (the view's URL parameters), ``title``,
  ``checkpoints`` (model -> checkpoint sha256 at save time), ``versions`` (library versions),
  ``results`` (name -> the result's record metadata), ``inputs`` (names of input arrays);
- arrays: ``input/<name>`` for inputs and ``<result name>/<field>`` for result arrays.

Reopening rebuilds the very result objects that were saved (``analyzers.from_record``), so a
link shows identical numbers without recomputing, and says so when a model has changed since.

Two limits keep a script from filling the server's disk with shares; both refuse with a message
and neither deletes anything already shared:

- the store's size budget, ``ZOOSCOPE_STORE_MAX_MB`` (default 1024; 0: no budget), checked by
  the store in the transaction that saves;
- new shares per browser session and hour, ``ZOOSCOPE_SHARES_PER_HOUR`` (default 30; 0: no
  limit), counted by a :class:`ShareRateLimit` that the session keeps.

Shares are private: a link opens for whoever has it, but no list shows a share to anyone but the
browser that made it (its owner, an opaque visitor id) unless that owner publishes it to the
gallery. The gallery can be turned off for the whole server, ``ZOOSCOPE_GALLERY=0``: then
nothing is listed as published and nothing can be published.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from analyzers import from_record, to_record
from app.runtime.guards import env_number
from app.runtime.images import DecodedImage
from app.runtime.results import results
from app.runtime.store import Store, StoreError
from app.runtime.store_url import STORE_URL_ENV, StoreLocation, StoreUrlError, store_location
from model_zoo import REGISTRY, current_sha256, get_spec

SHARE_FORMAT = 1
VERSIONED_LIBRARIES = ("zooscope", "torch", "captum", "transformers", "streamlit", "numpy")

STORE_BUDGET_ENV = "ZOOSCOPE_STORE_MAX_MB"
DEFAULT_STORE_MAX_MB = 1024.0  # all shared analyses together; a MiniLM share takes about 2.3 MB
SHARES_PER_HOUR_ENV = "ZOOSCOPE_SHARES_PER_HOUR"
DEFAULT_SHARES_PER_HOUR = 30  # new shares one browser session may make in any hour
SHARE_WINDOW_S = 3600.0
GALLERY_ENV = "ZOOSCOPE_GALLERY"
DEFAULT_GALLERY = 1  # 1: visitors may publish their shares to Home's gallery; 0: no gallery


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide the numbers (and of zooscope itself)."""
    versions = {}
    for name in VERSIONED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def store_budget_bytes() -> int | None:
    """The most the shared analyses may take together (``ZOOSCOPE_STORE_MAX_MB``, default 1024; 0: no budget)."""
    return int(env_number(STORE_BUDGET_ENV, DEFAULT_STORE_MAX_MB) * 2**20) or None


def shares_per_hour() -> int | None:
    """New shares one browser session may make in any hour (``ZOOSCOPE_SHARES_PER_HOUR``, default 30; 0: no limit)."""
    return int(env_number(SHARES_PER_HOUR_ENV, DEFAULT_SHARES_PER_HOUR)) or None


def gallery_on() -> bool:
    """Whether this server has a gallery of published shares (``ZOOSCOPE_GALLERY``, default 1; 0: off)."""
    return env_number(GALLERY_ENV, DEFAULT_GALLERY) != 0


@lru_cache(maxsize=4)
def _store_at(location: StoreLocation, max_store_bytes: int | None) -> Any:
    return Store(location, max_store_bytes=max_store_bytes)


def store() -> Any:
    """The process-wide analysis store named by ``ZOOSCOPE_STORE_URL`` (unset: the SQLite file
    ``app.runtime.store_url.default_store_path()``), with the size budget of ``ZOOSCOPE_STORE_MAX_MB``
    (both read at each call).

    Raises:
        StoreError: ``ZOOSCOPE_STORE_URL`` is not a store URL (the log says what to write).
    """
    try:
        location = store_location()
    except StoreUrlError as e:
        logging.getLogger(__name__).warning("%s", e)
        raise StoreError(f"Shared analyses are unavailable: this server's {STORE_URL_ENV} is not a store URL "
                         "zooscope knows. Your analysis is still on screen; ask the operator to correct the "
                         "setting (the server log says how).") from None
    return _store_at(location, store_budget_bytes())


class SharingTooFast(Exception):
    """This session made as many new shares as the server allows in an hour; the message says when it may again."""


class ShareRateLimit:
    """The new shares one browser session made in the last hour, and whether it may make another.

    A sliding window: at most ``limit`` shares in any hour. Call :meth:`check` before saving and
    :meth:`record` once a new share is saved (a link the session already has does not count).
    No streamlit; ``clock`` (seconds, monotonic) can be replaced in tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._times: deque[float] = deque()  # when each share of the last hour was saved, oldest first

    def wait_s(self, limit: int | None) -> float:
        """Seconds until this session may share again under ``limit`` (0: now; None or 0: no limit)."""
        now = self._clock()
        while self._times and self._times[0] <= now - SHARE_WINDOW_S:
            self._times.popleft()
        if not limit or len(self._times) < limit:
            return 0.0
        return self._times[-limit] + SHARE_WINDOW_S - now

    def check(self, limit: int | None) -> None:
        """Refuse a new share when this session has made ``limit`` in the last hour.

        Raises:
            SharingTooFast: the message says how many, that the analysis is still on screen, and when to try.
        """
        wait = self.wait_s(limit)
        if wait > 0:
            analyses = "analysis" if limit == 1 else "analyses"
            raise SharingTooFast(
                f"Not saved: this session has shared {limit} {analyses} in the last hour, the most this server "
                f"allows. Your analysis is still on screen; you can share it {_in_about(wait)}."
            )

    def record(self) -> None:
        """Count a new share saved now."""
        self._times.append(self._clock())


def _in_about(seconds: float) -> str:
    """A wait for people, rounded up: "in 40 seconds", "in 1 minute", "in 12 minutes"."""
    if seconds < 60:
        n = max(1, math.ceil(seconds))
        return f"in {n} second{'s' if n != 1 else ''}"
    n = math.ceil(seconds / 60)
    return f"in {n} minute{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class SavedView:
    """A shared analysis as reopened: its view query, inputs, rebuilt results and provenance."""

    link: str
    page: str
    title: str
    view: dict[str, str]
    inputs: dict[str, np.ndarray]
    results: dict[str, Any]
    checkpoints: dict[str, str]
    versions: dict[str, str]
    created_at: str
    owner: str = ""  # the visitor id of the browser that shared it ("": nobody)

    def changed_models(self) -> dict[str, tuple[str, str]]:
        """Models whose checkpoint differs from the one the analysis was made with: name -> (then, now)."""
        now = {name: _sha256_now(name) for name in self.checkpoints}
        return {name: (then, now[name]) for name, then in self.checkpoints.items() if then != now[name]}


def _sha256_now(name: str) -> str:
    """The weights' sha256 now: the zoo's manifest, or a user folder's weights hashed again; "" when gone."""
    if name in REGISTRY:
        return REGISTRY[name].sha256
    try:
        return current_sha256(name)
    except (KeyError, OSError, ValueError):  # the folder is no longer served
        return ""


def save_view(page: str, view_query: Mapping[str, str], *, title: str, inputs: Mapping[str, np.ndarray],
              results: Mapping[str, Any], models: tuple[str, ...], owner: str = "") -> str:
    """Save a view, its inputs and its results in ONE store transaction; return the link id.

    ``owner`` is the visitor id of the browser sharing it ("": nobody): only it lists the share
    and may publish it. Unpublished until it does.

    Raises:
        app.store.StoreError: not saved (the message says why).
    """
    meta: dict[str, Any] = {
        "format": SHARE_FORMAT, "page": page, "view": dict(view_query), "title": title,
        "checkpoints": {m: get_spec(m).sha256 for m in models}, "versions": library_versions(),
        "inputs": sorted(inputs), "results": {},
    }
    arrays: dict[str, np.ndarray] = {f"input/{k}": np.asarray(v) for k, v in inputs.items()}
    for name, result in results.items():
        record, result_arrays = to_record(result)
        meta["results"][name] = record
        arrays.update({f"{name}/{k}": np.asarray(v) for k, v in result_arrays.items()})
    return store().save(page, meta, arrays, title=title, owner=owner)


def _split_arrays(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    start = prefix + "/"
    return {k[len(start):]: v for k, v in arrays.items() if k.startswith(start)}


def _rebuild(saved: Any) -> SavedView:
    meta = saved.meta
    inputs = _split_arrays(saved.arrays, "input")
    results = {name: from_record(record, _split_arrays(saved.arrays, name))
               for name, record in meta.get("results", {}).items()}
    return SavedView(link=saved.id, page=str(meta.get("page", saved.kind)), title=saved.title,
                     view={str(k): str(v) for k, v in meta.get("view", {}).items()}, inputs=inputs,
                     results=results, checkpoints=dict(meta.get("checkpoints", {})),
                     versions=dict(meta.get("versions", {})), created_at=saved.created_at.isoformat(timespec="seconds"),
                     owner=saved.owner)


class LinkProblem(Exception):
    """A link that cannot be opened; the message is for people."""


def open_link(link: str) -> SavedView:
    """The shared analysis behind ``link``, read from the store once and then from memory.

    Raises:
        LinkProblem: no such analysis, the store cannot be read, or the record is damaged.
    """
    key = f"link:{link}"
    hit = results().get(key)
    if hit is not None:
        return hit
    try:
        saved = store().load(link)
    except StoreError as e:
        raise LinkProblem(str(e)) from None
    if saved is None:
        raise LinkProblem("No analysis is saved under this link. It may have been mistyped or cut short; "
                          "the page shows its defaults instead.")
    try:
        view = _rebuild(saved)
    except (ValueError, TypeError, KeyError) as e:
        raise LinkProblem(f"This saved analysis could not be read back ({e}); the page shows its defaults.") from None
    results().put(key, view)
    return view


def restore_inputs(saved: SavedView, data: Any) -> None:
    """Put a saved upload back into the session (``app.ui.session.SessionData``) so the view can use it."""
    upload = saved.view.get("upload")
    pixels = saved.inputs.get("pixels")
    if upload and pixels is not None and upload not in data.uploads:
        pixels = np.asarray(pixels, dtype=np.float32)
        preview = saved.inputs.get("preview")  # the uploaded image as shared (older links have none)
        display = np.asarray(preview, dtype=np.float32) if preview is not None else pixels
        note = ("Restored from the shared analysis: the image as uploaded (a preview) and as analysed." if preview is
                not None else "Restored from the shared analysis (28 × 28 as analysed).")
        restored = DecodedImage(display=display, pixels=pixels, format="saved", original_size=display.shape[::-1],
                                notices=(note,), sha256=upload)
        data.remember_upload(upload, restored, "shared upload")


def shared_by(owner: str, limit: int = 8) -> list[Any]:
    """The analyses ``owner`` shared (``app.runtime.store.SavedSummary``), newest first; [] for nobody or if unreadable."""
    return shared_by_checked(owner, limit)[0]


def shared_by_checked(owner: str, limit: int = 8) -> tuple[list[Any], str]:
    """:func:`shared_by`, and "" or the reason (for people) why the store could not be read: a page can say
    "cannot be listed right now" instead of "nothing shared" while the database is down."""
    try:
        return (store().recent(limit, owner=owner) if owner else []), ""
    except StoreError as e:
        return [], str(e)


def published(limit: int = 8) -> list[Any]:
    """The analyses published to the gallery, newest published first; [] when the gallery is off or unreadable."""
    try:
        return store().recent(limit, published_only=True) if gallery_on() else []
    except StoreError:
        return []


class NotPublished(Exception):
    """A share could not be published (or withdrawn); the message is for people."""


def publish(link: str, owner: str, *, published: bool = True) -> None:
    """Publish ``link`` to the gallery (or withdraw it); only the browser that shared it may, and only
    while this server has a gallery. Nothing is deleted either way.

    Raises:
        NotPublished: the gallery is off, the share is not ``owner``'s, or the store failed.
    """
    if not gallery_on():
        raise NotPublished("Not published: this server has no gallery (ZOOSCOPE_GALLERY=0). Your share "
                           "and its link are kept; anyone with the link can still open it.")
    try:
        done = store().publish(link, owner, published=published)
    except StoreError as e:
        raise NotPublished(str(e)) from None
    if not done:
        raise NotPublished("Not published: only the browser that shared an analysis can publish it. "
                           "Share it from here to get a link of your own, and publish that.")


def is_published(link: str) -> bool:
    """Whether ``link`` is published to the gallery (False when it is not, or the store cannot be read)."""
    try:
        return store().published_at(link) is not None
    except StoreError:
        return False


def link_url(base_url: str | None, page_path: str, link: str) -> str:
    """The address of a shared analysis: the app's base URL, the page's path and ``?id=``."""
    path = f"/{page_path}" if page_path else "/"
    if not base_url:
        return f"{path}?id={link}"
    parts = urlsplit(base_url)
    root = parts.path
    for suffix in (f"/{page_path}", f"/{page_path}/"):
        if page_path and root.endswith(suffix):
            root = root[: -len(suffix)]
    root = root.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"{root}{path}", f"id={link}", ""))
