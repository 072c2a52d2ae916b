"""The analysis store: saved analyses reopened by unguessable link ids, in SQLite or PostgreSQL.

One row per saved analysis: its kind, a title, canonical JSON metadata and its arrays as an
.npz blob (never pickle). :class:`Store` is the front every caller uses; it checks arguments,
ids, sizes and the budget the same way whatever keeps the rows, and hands them to a backend:

- :mod:`app.runtime.store_sqlite` (the default, ``$ZOOSCOPE_HOME/analyses.sqlite3``): WAL mode,
  ``synchronous=FULL``, one ``BEGIN IMMEDIATE`` transaction per write, a connection per thread;
- :mod:`app.runtime.store_pg` (``ZOOSCOPE_STORE_URL=postgresql://...``): psycopg 3 with a small
  pool, one transaction per write, for several app replicas on one database.

Which one is said by :func:`app.runtime.store_url.store_location`. Both give the same guarantees,
checked by the same tests: a save that returned an id survives a SIGKILL of the process,
concurrent saves lose nothing, and a malformed id is refused before the database is touched.
No streamlit and no torch here: the CLI and the pages share it.

An analysis may have an owner (an opaque id of the browser that shared it, never a cookie),
who alone may publish it; ``recent`` lists one owner's or the published ones. Analyses saved
before schema 2 are owned by nobody and unpublished: opening a schema-1 store adds the
``sharing`` table in one transaction and changes no saved row.

A store may have a size budget (``max_store_bytes``): a save that would take it past is
refused, checked in the transaction that inserts, so two writers (threads, processes or
replicas) cannot both squeeze past. Nothing saved is ever deleted to make room.

Errors: conditions of the machine (store read-only, disk full, size budget spent, store busy,
file damaged, database unreachable) raise :class:`StoreError` with a message for people.
Wrong arguments from our own code (object arrays, meta that is not JSON) raise
``TypeError``/``ValueError``. :meth:`Store.load` returns ``None`` both for unknown ids and for
malformed ones, which it rejects before touching the database.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.runtime.payload import check_text, checked_arrays, meta_to_json, pack_arrays, unpack_arrays
from app.runtime.store_errors import StoreError
from app.runtime.store_errors import megabytes as _megabytes
from app.runtime.store_sqlite import SCHEMA_VERSION, SqliteBackend
from app.runtime.store_url import StoreLocation, StoreUrlError, default_store_path, parse_store_url

__all__ = [
    "LINK_ID_PATTERN",
    "MAX_PAYLOAD_BYTES",
    "SCHEMA_VERSION",
    "SavedAnalysis",
    "SavedSummary",
    "Store",
    "StoreError",
    "default_store_path",
    "is_valid_link_id",
]

_log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 50 * 1024 * 1024
BUSY_TIMEOUT_S = 10.0
LINK_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")
_MAX_RECENT = 1000


@dataclass(frozen=True)
class SavedSummary:
    """One line of a list of saved analyses: what it is, when it was saved, and since when it is published."""

    id: str
    kind: str
    title: str
    created_at: datetime
    published_at: datetime | None = None


@dataclass(frozen=True, eq=False)
class SavedAnalysis:
    """A saved analysis as it was stored: metadata and arrays, exactly."""

    id: str
    kind: str
    title: str
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    created_at: datetime
    owner: str = ""  # the browser that shared it ("": nobody, e.g. saved before schema 2)
    published_at: datetime | None = None


def is_valid_link_id(s: object) -> bool:
    """Whether ``s`` has the shape of a link id: 22 URL-safe characters."""
    return isinstance(s, str) and LINK_ID_PATTERN.fullmatch(s) is not None


class Store:
    """The store that keeps saved analyses (a SQLite file or a PostgreSQL database); safe to share between threads.

    Args:
        location: a SQLite file path, a store URL (``sqlite:///abs/path``, ``postgresql://...``)
            or a :class:`~app.runtime.store_url.StoreLocation`. Nothing is opened until first used.
        busy_timeout: seconds a write waits for other writers (locks) before giving up.
        max_payload_bytes: the largest analysis (arrays + metadata) accepted.
        max_store_bytes: the most all saved analyses together may take (arrays + metadata
            + titles); a save past it is refused and nothing is deleted. None or 0: no budget.

    Attributes:
        location: where the rows are kept; ``path`` is the SQLite file (None for PostgreSQL).

    Raises:
        StoreUrlError: ``location`` is a string that looks like a URL zooscope does not know.
    """

    def __init__(
        self,
        location: str | Path | StoreLocation,
        *,
        busy_timeout: float = BUSY_TIMEOUT_S,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_store_bytes: int | None = None,
    ) -> None:
        self.location = _as_location(location)
        self.path = self.location.path
        self.busy_timeout = float(busy_timeout)
        self.max_payload_bytes = int(max_payload_bytes)
        self.max_store_bytes = int(max_store_bytes or 0) or None
        if self.location.backend == "postgresql":
            from app.runtime.store_pg import PgBackend  # psycopg is imported only when a store there is used

            self._backend: Any = PgBackend(self.location.url, self.busy_timeout)
        else:
            self._backend = SqliteBackend(self.location.path, self.busy_timeout)

    def __repr__(self) -> str:
        return f"Store({str(self.location)!r})"

    @property
    def backend(self) -> str:
        """Which database keeps the rows: "sqlite" or "postgresql"."""
        return self.location.backend

    # ------------------------------------------------------------ public

    def save(self, kind: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], *, title: str = "",
             owner: str = "") -> str:
        """Save an analysis in one transaction and return its new link id; ``owner`` ("": nobody) may publish it.

        ``kind`` is free text (the page that shows it, or e.g. "dataset" for a whole-dataset
        result): any JSON ``meta`` and any numeric/bool/str arrays are kept exactly, whatever the kind.

        Raises:
            StoreError: the store is read-only, full (its disk, or its size budget), busy, unreachable,
                or the analysis too large.
            TypeError: object arrays, meta that is not JSON, or arguments of the wrong type.
            ValueError: an empty kind, or a NUL character in kind, title or owner.
        """
        for field, text, allow_empty in (("kind", kind, False), ("title", title, True), ("owner", owner, True)):
            check_text(field, text, allow_empty=allow_empty)
            if "\x00" in text:  # PostgreSQL's text cannot hold it; refused on both backends alike
                raise ValueError(f"{field} must not contain NUL characters")
        meta_json = meta_to_json(meta)
        arrays = checked_arrays(arrays)
        self._check_payload(sum(a.nbytes for a in arrays.values()) + len(meta_json) + len(title))
        blob = pack_arrays(arrays)
        self._check_payload(len(blob) + len(meta_json) + len(title))
        link_id = secrets.token_urlsafe(16)
        row = (link_id, kind, title, meta_json, blob, _now())
        n_bytes = len(blob) + len(meta_json.encode()) + len(title.encode())
        admit = None if self.max_store_bytes is None else (lambda stored: self._admit(stored, n_bytes))
        self._backend.insert(row, owner, admit)
        return link_id

    def load(self, link_id: str) -> SavedAnalysis | None:
        """The saved analysis behind a link id, or None if there is none.

        Malformed ids (anything but 22 URL-safe characters) return None
        without touching the database.

        Raises:
            StoreError: the store cannot be read, or this analysis is damaged.
        """
        if not is_valid_link_id(link_id):
            return None
        row = self._backend.fetch(link_id)
        return None if row is None else _analysis_from_row(row)

    def recent(self, limit: int = 10, *, owner: str | None = None, published_only: bool = False) -> list[SavedSummary]:
        """Saved analyses without their arrays, newest first: all of them, or one owner's, or the published ones.

        Args:
            owner: only this owner's analyses, newest saved first ("" owns nothing: []).
            published_only: only published analyses (without ``owner``: newest published first).
        """
        if not isinstance(limit, int) or not 1 <= limit <= _MAX_RECENT:
            raise ValueError(f"limit must be an integer from 1 to {_MAX_RECENT}, got {limit!r}")
        if owner == "":
            return []
        rows = self._backend.recent(limit, owner, bool(published_only))
        return [SavedSummary(id=r[0], kind=r[1], title=r[2], created_at=_as_time(r[3]), published_at=_as_time(r[4]))
                for r in rows]

    def publish(self, link_id: str, owner: str, *, published: bool = True) -> bool:
        """Publish (or withdraw) an analysis in one transaction, if it is ``owner``'s; nothing is deleted.

        Returns True when it is ``owner``'s and now (or already) as asked; False, changing nothing,
        when there is no such analysis or it is not ``owner``'s (nobody's, if saved before schema 2).
        Raises StoreError when the store is read-only, busy, unreachable or damaged.
        """
        if not is_valid_link_id(link_id) or not isinstance(owner, str) or not owner:
            return False
        return self._backend.publish(link_id, owner, bool(published), _now())

    def published_at(self, link_id: str) -> datetime | None:
        """When an analysis was published to the gallery; None if it is not, or there is no such analysis."""
        if not is_valid_link_id(link_id):
            return None
        return _as_time(self._backend.published_at(link_id))

    def integrity_check(self) -> str:
        """"ok", or a description of the damage (SQLite's integrity check; PostgreSQL: schema and joins)."""
        return self._backend.integrity_check()

    def close(self) -> None:
        """Let go of connections (SQLite: this thread's; PostgreSQL: the pool's). The store opens again when used."""
        self._backend.close()

    # ----------------------------------------------------------- private

    def _check_payload(self, n_bytes: int) -> None:
        if n_bytes > self.max_payload_bytes:
            raise StoreError(
                f"Not saved: this analysis is {n_bytes / 2**20:,.1f} MB; the store keeps analyses up to "
                f"{self.max_payload_bytes / 2**20:g} MB. Your analysis is still on screen; "
                "analyse fewer inputs or a smaller model to save it."
            )

    def _admit(self, stored: int, n_bytes: int) -> None:
        """Refuse a save of ``n_bytes`` when ``stored`` bytes are kept already and the budget would be passed."""
        if stored + n_bytes > self.max_store_bytes:
            _log.warning("analysis store %s is at its budget: %d bytes stored, %d more refused (budget %d)",
                         self.location, stored, n_bytes, self.max_store_bytes)
            raise StoreError(
                f"Not saved: this server's store of shared analyses is full ({_megabytes(self.max_store_bytes)} "
                "MB). Already shared analyses are kept, and your analysis is still on screen; ask the operator "
                "to raise ZOOSCOPE_STORE_MAX_MB or to clear old shares."
            )


def _as_location(location: str | Path | StoreLocation) -> StoreLocation:
    if isinstance(location, StoreLocation):
        return location
    if isinstance(location, str) and re.match(r"^(sqlite|postgres|postgresql):", location, re.IGNORECASE):
        return parse_store_url(location)
    if isinstance(location, (str, Path)) and str(location):
        return StoreLocation("sqlite", path=Path(location))
    raise StoreUrlError(f"A store is a SQLite file path or a store URL, got {location!r}.")


# ----------------------------------------------------------- rows


def _analysis_from_row(row: tuple) -> SavedAnalysis:
    link_id, kind, title, meta_json, blob, created_at, owner, published_at = row
    try:
        meta, arrays = json.loads(meta_json), unpack_arrays(blob)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:  # refuses pickled payloads too
        raise StoreError(
            f"Could not read saved analyses: the analysis {link_id} is damaged ({exc}). "
            "Run the analysis again and save a new link."
        ) from exc
    return SavedAnalysis(link_id, kind, title, meta, arrays, _as_time(created_at), owner or "", _as_time(published_at))


def _now() -> datetime:
    return datetime.now(UTC)


def _as_time(value: str | datetime | None) -> datetime | None:
    """A stored time as an aware datetime in UTC: SQLite keeps ISO text, PostgreSQL TIMESTAMPTZ."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.astimezone(UTC)
