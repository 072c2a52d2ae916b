"""The analysis store's SQLite backend: one file, WAL mode, ``synchronous=FULL``, one connection per thread.

Every write is one ``BEGIN IMMEDIATE`` transaction, so a save that returned survives a crash of the
process and two writers (threads or processes) are serialised: the size budget is checked inside
the transaction that inserts. Schema versions live in ``PRAGMA user_version``; a schema-1 store
gains the ``sharing`` table in place. Rows go in and come out as tuples; :class:`app.runtime.store.Store`
checks arguments and builds the dataclasses. No streamlit.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from app.runtime.store_errors import SchemaTooNew, StoreError, is_busy, people_message

__all__ = ["SCHEMA_VERSION", "SqliteBackend"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

SCHEMA_VERSION = 2  # 1: analyses; 2: + sharing (owner, published_at), added in place to a schema-1 store

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


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


class SqliteBackend:
    """A SQLite store file; safe to share between threads (each gets its own connection)."""

    name = "sqlite"

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = Path(path)
        self.busy_timeout = float(busy_timeout)
        self._local = threading.local()

    def __str__(self) -> str:
        return str(self.path)

    # ---------------------------------------------------------------- rows

    def insert(self, row: tuple, owner: str, admit: Callable[[int], None] | None) -> None:
        """Insert ``row`` (id, kind, title, meta_json, blob, created_at) and its owner in one transaction;
        ``admit(bytes already stored)`` runs first inside it and raises to refuse."""

        def work(conn: sqlite3.Connection) -> None:
            if admit is not None:
                admit(int(conn.execute(_SELECT_STORED_BYTES).fetchone()[0]))
            seq = conn.execute(_INSERT, (*row[:5], _iso(row[5]))).lastrowid
            if owner:
                conn.execute(_INSERT_OWNER, (seq, owner))

        self._run("save", work)

    def fetch(self, link_id: str) -> tuple | None:
        """(id, kind, title, meta_json, blob, created_at, owner, published_at), or None."""
        return self._run("read", lambda conn: conn.execute(_SELECT_ONE, (link_id,)).fetchone())

    def recent(self, limit: int, owner: str | None, published_only: bool) -> list[tuple]:
        """(id, kind, title, created_at, published_at) rows, newest first."""
        query, args = (_SELECT_OWNED, (owner, bool(published_only), limit)) if owner is not None else (
            (_SELECT_PUBLISHED if published_only else _SELECT_RECENT), (limit,))
        return self._run("read", lambda conn: conn.execute(query, args).fetchall())

    def publish(self, link_id: str, owner: str, published: bool, now: datetime) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute(_SELECT_SHARING, (link_id,)).fetchone()
            if row is None or row[1] != owner:
                return False
            if bool(row[2]) != published:
                conn.execute(_SET_PUBLISHED, (_iso(now) if published else None, row[0]))
            return True

        return self._run("publish", work)

    def published_at(self, link_id: str) -> str | None:
        row = self._run("read", lambda conn: conn.execute(_SELECT_SHARING, (link_id,)).fetchone())
        return row[2] if row else None

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
