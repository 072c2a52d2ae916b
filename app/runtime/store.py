"""The analysis store: saved analyses in SQLite, reopened by unguessable link ids.

One row per saved analysis: its kind, a title, canonical JSON metadata and
its arrays as an .npz blob (never pickle). SQLite runs in WAL mode with
``synchronous=FULL``, so a save that returned an id survives a crash of the
process; every write is one ``BEGIN IMMEDIATE`` transaction. Each thread gets
its own connection. No streamlit and no torch here: the CLI and the pages
share it.

An analysis may have an owner (an opaque id of the browser that shared it, never a cookie),
who alone may publish it; ``recent`` lists one owner's or the published ones. Analyses saved
before schema 2 are owned by nobody and unpublished: opening a schema-1 store adds the
``sharing`` table in one transaction and changes no saved row.

A store may have a size budget (``max_store_bytes``): a save that would take it
past is refused, checked in the transaction that inserts, so two writers cannot
both squeeze past. Nothing saved is ever deleted to make room.

Errors: conditions of the machine (store read-only, disk full, size budget
spent, store busy, file damaged) raise :class:`StoreError` with a message for
people. Wrong arguments from our own code (object arrays, meta that is not
JSON) raise ``TypeError``/``ValueError``. :meth:`Store.load` returns ``None``
both for unknown ids and for malformed ones, which it rejects before touching
the database.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import secrets
import sqlite3
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import platformdirs

from app.runtime.payload import check_text, checked_arrays, meta_to_json, pack_arrays, unpack_arrays
from app.runtime.store_errors import SchemaTooNew, StoreError, is_busy, people_message
from app.runtime.store_errors import megabytes as _megabytes

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
_T = TypeVar("_T")

SCHEMA_VERSION = 2  # 1: analyses; 2: + sharing (owner, published_at), added in place to a schema-1 store
MAX_PAYLOAD_BYTES = 50 * 1024 * 1024
BUSY_TIMEOUT_S = 10.0
LINK_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")
_MAX_RECENT = 1000

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS analyses (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE CHECK (length(id) = 22),
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        meta_json TEXT NOT NULL,
        arrays_npz BLOB NOT NULL,
        created_at TEXT NOT NULL
    )""",
    # Who shared an analysis and whether they published it; no row: owned by nobody, unpublished.
    # A table of its own rather than columns of analyses: a column after arrays_npz would be read
    # by walking the blob's overflow pages, and a schema-1 store gains it without touching a row.
    """CREATE TABLE IF NOT EXISTS sharing (
        seq INTEGER PRIMARY KEY REFERENCES analyses (seq),
        owner TEXT NOT NULL CHECK (length(owner) > 0),
        published_at TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS sharing_by_owner ON sharing (owner)",
    "CREATE INDEX IF NOT EXISTS sharing_published ON sharing (published_at) WHERE published_at IS NOT NULL",
)
_INSERT = "INSERT INTO analyses (id, kind, title, meta_json, arrays_npz, created_at) VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_OWNER = "INSERT INTO sharing (seq, owner) VALUES (?, ?)"
_SELECT_ONE = ("SELECT a.id, a.kind, a.title, a.meta_json, a.arrays_npz, a.created_at, s.owner, s.published_at "
               "FROM analyses a LEFT JOIN sharing s ON s.seq = a.seq WHERE a.id = ?")
_SUMMARY = "SELECT a.id, a.kind, a.title, a.created_at, s.published_at "
_SELECT_RECENT = _SUMMARY + "FROM analyses a LEFT JOIN sharing s ON s.seq = a.seq ORDER BY a.seq DESC LIMIT ?"
_SELECT_OWNED = (_SUMMARY + "FROM sharing s JOIN analyses a ON a.seq = s.seq WHERE s.owner = ? "
                 "AND (s.published_at IS NOT NULL OR NOT ?) ORDER BY s.seq DESC LIMIT ?")
_SELECT_PUBLISHED = (_SUMMARY + "FROM sharing s JOIN analyses a ON a.seq = s.seq WHERE s.published_at IS NOT NULL "
                     "ORDER BY s.published_at DESC, s.seq DESC LIMIT ?")
_SELECT_SHARING = "SELECT s.seq, s.owner, s.published_at FROM analyses a JOIN sharing s ON s.seq = a.seq WHERE a.id = ?"
_SET_PUBLISHED = "UPDATE sharing SET published_at = ? WHERE seq = ?"
# Cheap: length() of a BLOB reads only the record header, and title and meta_json come before the blob
# (0.1 ms for 200 shares of 2.3 MB; a column after arrays_npz would walk its overflow pages, 100 ms).
_SELECT_STORED_BYTES = (
    "SELECT COALESCE(SUM(length(arrays_npz) + length(CAST(meta_json AS BLOB)) + length(CAST(title AS BLOB))), 0) "
    "FROM analyses"
)


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


def default_store_path() -> Path:
    """Where analyses are saved: ``$ZOOSCOPE_HOME/analyses.sqlite3`` (a per-user data folder by default)."""
    home = os.environ.get("ZOOSCOPE_HOME") or platformdirs.user_data_dir("zooscope")
    return Path(home) / "analyses.sqlite3"


def is_valid_link_id(s: object) -> bool:
    """Whether ``s`` has the shape of a link id: 22 URL-safe characters."""
    return isinstance(s, str) and LINK_ID_PATTERN.fullmatch(s) is not None


class Store:
    """The SQLite file that keeps saved analyses; safe to share between threads.

    Args:
        path: the database file; its folder is created when first needed.
        busy_timeout: seconds a write waits for other writers before giving up.
        max_payload_bytes: the largest analysis (arrays + metadata) accepted.
        max_store_bytes: the most all saved analyses together may take (arrays + metadata
            + titles); a save past it is refused and nothing is deleted. None or 0: no budget.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = BUSY_TIMEOUT_S,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_store_bytes: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = float(busy_timeout)
        self.max_payload_bytes = int(max_payload_bytes)
        self.max_store_bytes = int(max_store_bytes or 0) or None
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------ public

    def save(self, kind: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], *, title: str = "",
             owner: str = "") -> str:
        """Save an analysis in one transaction and return its new link id; ``owner`` ("": nobody) may publish it.

        Raises:
            StoreError: the store is read-only, full (its disk, or its size budget), busy, or the
                analysis too large.
            TypeError: object arrays, meta that is not JSON, or arguments of the wrong type.
        """
        check_text("kind", kind, allow_empty=False)
        check_text("title", title, allow_empty=True)
        check_text("owner", owner, allow_empty=True)
        meta_json = meta_to_json(meta)
        arrays = checked_arrays(arrays)
        self._check_payload(sum(a.nbytes for a in arrays.values()) + len(meta_json) + len(title))
        blob = pack_arrays(arrays)
        self._check_payload(len(blob) + len(meta_json) + len(title))
        link_id = secrets.token_urlsafe(16)
        row = (link_id, kind, title, meta_json, blob, _now().isoformat(timespec="microseconds"))
        n_bytes = len(blob) + len(meta_json.encode()) + len(title.encode())
        self._run("save", lambda conn: self._insert_within_budget(conn, row, n_bytes, owner))
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
        row = self._run("read", lambda conn: conn.execute(_SELECT_ONE, (link_id,)).fetchone())
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
        query, args = (_SELECT_OWNED, (owner, bool(published_only), limit)) if owner is not None else (
            (_SELECT_PUBLISHED if published_only else _SELECT_RECENT), (limit,))
        rows = self._run("read", lambda conn: conn.execute(query, args).fetchall())
        return [SavedSummary(id=r[0], kind=r[1], title=r[2], created_at=_parse_time(r[3]),
                             published_at=_parse_time(r[4]) if r[4] else None) for r in rows]

    def publish(self, link_id: str, owner: str, *, published: bool = True) -> bool:
        """Publish (or withdraw) an analysis in one transaction, if it is ``owner``'s; nothing is deleted.

        Returns True when it is ``owner``'s and now (or already) as asked; False, changing nothing,
        when there is no such analysis or it is not ``owner``'s (nobody's, if saved before schema 2).
        Raises StoreError when the store is read-only, busy or damaged.
        """
        if not is_valid_link_id(link_id) or not isinstance(owner, str) or not owner:
            return False

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute(_SELECT_SHARING, (link_id,)).fetchone()
            if row is None or row[1] != owner:
                return False
            if bool(row[2]) != published:
                conn.execute(_SET_PUBLISHED, (_now().isoformat(timespec="microseconds") if published else None, row[0]))
            return True

        return self._run("publish", work)

    def published_at(self, link_id: str) -> datetime | None:
        """When an analysis was published to the gallery; None if it is not, or there is no such analysis."""
        row = self._run("read", lambda conn: conn.execute(_SELECT_SHARING, (link_id,)).fetchone())
        return _parse_time(row[2]) if row and row[2] else None

    def integrity_check(self) -> str:
        """SQLite's verdict on the store file: "ok", or a description of the damage."""
        rows = self._run("read", lambda conn: conn.execute("PRAGMA integrity_check").fetchall())
        return "\n".join(str(r[0]) for r in rows)

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    # ----------------------------------------------------------- private

    def _check_payload(self, n_bytes: int) -> None:
        if n_bytes > self.max_payload_bytes:
            raise StoreError(
                f"Not saved: this analysis is {n_bytes / 2**20:,.1f} MB; the store keeps analyses up to "
                f"{self.max_payload_bytes / 2**20:g} MB. Your analysis is still on screen; "
                "analyse fewer inputs or a smaller model to save it."
            )

    def _insert_within_budget(self, conn: sqlite3.Connection, row: tuple, n_bytes: int, owner: str) -> None:
        """Insert ``row`` and its owner unless it would take the store past its budget (inside the write transaction)."""
        if self.max_store_bytes is not None:
            stored = int(conn.execute(_SELECT_STORED_BYTES).fetchone()[0])
            if stored + n_bytes > self.max_store_bytes:
                _log.warning("analysis store %s is at its budget: %d bytes stored, %d more refused (budget %d)",
                             self.path, stored, n_bytes, self.max_store_bytes)
                raise StoreError(
                    f"Not saved: this server's store of shared analyses is full ({_megabytes(self.max_store_bytes)} "
                    "MB). Already shared analyses are kept, and your analysis is still on screen; ask the operator "
                    "to raise ZOOSCOPE_STORE_MAX_MB or to clear old shares."
                )
        seq = conn.execute(_INSERT, row).lastrowid
        if owner:
            conn.execute(_INSERT_OWNER, (seq, owner))

    def _run(self, action: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` for ``action`` ("read", else in a write transaction), retrying while the store is busy."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                conn = self._connection()
                return work(conn) if action == "read" else _in_transaction(conn, work)
            except sqlite3.OperationalError as exc:
                if is_busy(exc) and time.monotonic() + delay < deadline:
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.25)
                    continue
                raise self._store_error(action, exc) from exc
            except (sqlite3.Error, OSError, SchemaTooNew) as exc:
                raise self._store_error(action, exc) from exc

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            _ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _store_error(self, action: str, exc: BaseException) -> StoreError:
        _log.warning("analysis store %s failed: %r", self.path, exc)
        return StoreError(people_message(action, exc, self.busy_timeout))


# ------------------------------------------------------------ transactions


def _in_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``work`` between BEGIN IMMEDIATE and COMMIT; roll back on any failure."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the original error says more
                conn.execute("ROLLBACK")
        raise
    return result


def _ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the tables on first use, bring an older store up to this schema in place (adding, never
    changing a row), and refuse a store written by a newer zooscope."""
    if _user_version(conn) == SCHEMA_VERSION:
        return

    def create(c: sqlite3.Connection) -> None:
        version = _user_version(c)
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(version, SCHEMA_VERSION)
        for statement in _SCHEMA:
            c.execute(statement)
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    _in_transaction(conn, create)


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


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
    return SavedAnalysis(link_id, kind, title, meta, arrays, _parse_time(created_at), owner or "",
                         _parse_time(published_at) if published_at else None)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)
