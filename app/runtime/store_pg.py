"""The analysis store's PostgreSQL backend: psycopg 3 and a small connection pool (``psycopg_pool``).

Same guarantees as the SQLite file, for several app replicas on one database:

- a save is one transaction, and :meth:`PgBackend.insert` returns only after COMMIT, which
  PostgreSQL acknowledges once its WAL is flushed (``synchronous_commit`` on, its default):
  a save that returned survives a SIGKILL of the app (and of the database server);
- the size budget is checked inside the inserting transaction under a transaction-scoped
  advisory lock, so two replicas cannot both squeeze past it;
- the schema is created on first use, idempotently, under another advisory lock, so two
  replicas starting at once do not race (``CREATE TABLE IF NOT EXISTS`` alone can fail when two
  sessions create the same table together); its version is a row of ``zooscope_schema``, and a
  database set up by a newer zooscope is refused, as with SQLite's ``user_version``.

Tables carry a ``zooscope_`` prefix, so a database (or the schema named by ``search_path``) can be
shared with other applications. When the database cannot be reached the store raises
:class:`StoreError` with one message for people (no host, user or database in it); the log gets
the detail, and for :data:`DOWN_HOLD_S` seconds later calls fail at once instead of waiting again,
so pages that only list shares stay quick while the database is down. No streamlit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from app.runtime.store_errors import PG_RETRY_CODES, SchemaTooNew, StoreError, pg_people_message, pg_reason
from app.runtime.store_url import redacted

__all__ = ["DOWN_HOLD_S", "SCHEMA_VERSION", "PgBackend"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

SCHEMA_VERSION = 2  # kept equal to the SQLite schema's: 2 = analyses + sharing (owner, published_at)
POOL_MAX = 8  # connections per app process; each save or read holds one for milliseconds
CONNECT_TIMEOUT_S = 5  # libpq's connect_timeout, unless the URL sets its own
DOWN_HOLD_S = 5.0  # after "cannot be reached", fail at once for this long rather than wait again
_SCHEMA_LOCK = 0x7A6F6F5363686D61  # pg_advisory_xact_lock keys ("zooScama" / "zooBudgt" in ASCII)
_BUDGET_LOCK = 0x7A6F6F4275646774

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS zooscope_schema (
        singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
        version INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS zooscope_analyses (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE CHECK (length(id) = 22),
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        meta_json TEXT NOT NULL,
        arrays_npz BYTEA NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    )""",
    # .npz of float arrays hardly compresses: store it out of line without trying (saves CPU per save).
    "ALTER TABLE zooscope_analyses ALTER COLUMN arrays_npz SET STORAGE EXTERNAL",
    """CREATE TABLE IF NOT EXISTS zooscope_sharing (
        seq BIGINT PRIMARY KEY REFERENCES zooscope_analyses (seq),
        owner TEXT NOT NULL CHECK (length(owner) > 0),
        published_at TIMESTAMPTZ
    )""",
    "CREATE INDEX IF NOT EXISTS zooscope_sharing_by_owner ON zooscope_sharing (owner)",
    ("CREATE INDEX IF NOT EXISTS zooscope_sharing_published ON zooscope_sharing (published_at) "
     "WHERE published_at IS NOT NULL"),
)
_INSERT = ("INSERT INTO zooscope_analyses (id, kind, title, meta_json, arrays_npz, created_at) "
           "VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq")
_INSERT_OWNER = "INSERT INTO zooscope_sharing (seq, owner) VALUES (%s, %s)"
_SELECT_ONE = ("SELECT a.id, a.kind, a.title, a.meta_json, a.arrays_npz, a.created_at, s.owner, s.published_at "
               "FROM zooscope_analyses a LEFT JOIN zooscope_sharing s ON s.seq = a.seq WHERE a.id = %s")
_SUMMARY = "SELECT a.id, a.kind, a.title, a.created_at, s.published_at "
_SELECT_RECENT = (_SUMMARY + "FROM zooscope_analyses a LEFT JOIN zooscope_sharing s ON s.seq = a.seq "
                  "ORDER BY a.seq DESC LIMIT %s")
_SELECT_OWNED = (_SUMMARY + "FROM zooscope_sharing s JOIN zooscope_analyses a ON a.seq = s.seq WHERE s.owner = %s "
                 "AND (s.published_at IS NOT NULL OR NOT %s) ORDER BY s.seq DESC LIMIT %s")
_SELECT_PUBLISHED = (_SUMMARY + "FROM zooscope_sharing s JOIN zooscope_analyses a ON a.seq = s.seq "
                     "WHERE s.published_at IS NOT NULL ORDER BY s.published_at DESC, s.seq DESC LIMIT %s")
_SELECT_SHARING = ("SELECT s.seq, s.owner, s.published_at FROM zooscope_analyses a "
                   "JOIN zooscope_sharing s ON s.seq = a.seq WHERE a.id = %s")
_SET_PUBLISHED = "UPDATE zooscope_sharing SET published_at = %s WHERE seq = %s"
# octet_length of a TOASTed bytea reads its size from the TOAST pointer, not the value.
_SELECT_STORED_BYTES = ("SELECT COALESCE(SUM(octet_length(arrays_npz) + octet_length(meta_json) "
                        "+ octet_length(title)), 0) FROM zooscope_analyses")


class PgBackend:
    """A PostgreSQL database that keeps saved analyses; safe to share between threads.

    Nothing connects until the first call; a process that forks gets a pool of its own.
    """

    name = "postgresql"

    def __init__(self, url: str, busy_timeout: float) -> None:
        self.url = url
        self.busy_timeout = float(busy_timeout)
        self._lock = threading.Lock()
        self._pool: Any = None
        self._pool_pid = 0
        self._schema_ok = False
        self._down_until = 0.0
        self._down_reason = ""
        self._reached = False  # whether the last call reached the database (False: probe before the pool)

    def __str__(self) -> str:
        return redacted(self.url)

    # ---------------------------------------------------------------- rows

    def insert(self, row: tuple, owner: str, admit: Callable[[int], None] | None) -> None:
        """Insert ``row`` (id, kind, title, meta_json, blob, created_at) and its owner in one transaction;
        ``admit(bytes already stored)`` runs first inside it, under the budget lock, and raises to refuse."""

        def work(conn: Any) -> None:
            if admit is not None:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_BUDGET_LOCK,))
                admit(int(conn.execute(_SELECT_STORED_BYTES).fetchone()[0]))
            seq = conn.execute(_INSERT, row).fetchone()[0]
            if owner:
                conn.execute(_INSERT_OWNER, (seq, owner))

        self._run("save", work)

    def fetch(self, link_id: str) -> tuple | None:
        """(id, kind, title, meta_json, blob, created_at, owner, published_at), or None."""
        # binary results: the blob comes as its bytes, not as hex text twice its size (2.3 MB: 50 -> 15-25 ms here)
        row = self._run("read", lambda conn: conn.execute(_SELECT_ONE, (link_id,), binary=True).fetchone())
        return None if row is None else (*row[:4], bytes(row[4]), *row[5:])

    def recent(self, limit: int, owner: str | None, published_only: bool) -> list[tuple]:
        """(id, kind, title, created_at, published_at) rows, newest first."""
        query, args = (_SELECT_OWNED, (owner, bool(published_only), limit)) if owner is not None else (
            (_SELECT_PUBLISHED if published_only else _SELECT_RECENT), (limit,))
        return self._run("read", lambda conn: conn.execute(query, args).fetchall())

    def publish(self, link_id: str, owner: str, published: bool, now: datetime) -> bool:
        def work(conn: Any) -> bool:
            row = conn.execute(_SELECT_SHARING + " FOR UPDATE OF s", (link_id,)).fetchone()
            if row is None or row[1] != owner:
                return False
            if (row[2] is not None) != published:
                conn.execute(_SET_PUBLISHED, (now if published else None, row[0]))
            return True

        return self._run("publish", work)

    def published_at(self, link_id: str) -> datetime | None:
        row = self._run("read", lambda conn: conn.execute(_SELECT_SHARING, (link_id,)).fetchone())
        return row[2] if row else None

    def integrity_check(self) -> str:
        """"ok" when the schema is this zooscope's and every share row joins an analysis; else what is wrong."""

        def work(conn: Any) -> str:
            orphans = conn.execute("SELECT count(*) FROM zooscope_sharing s LEFT JOIN zooscope_analyses a "
                                   "ON a.seq = s.seq WHERE a.seq IS NULL").fetchone()[0]
            version = conn.execute("SELECT version FROM zooscope_schema").fetchone()[0]
            problems = [f"{orphans} sharing rows without an analysis"] if orphans else []
            problems += [f"schema version {version}, expected {SCHEMA_VERSION}"] if version != SCHEMA_VERSION else []
            return "\n".join(problems) or "ok"

        return self._run("read", work)

    def close(self) -> None:
        """Close the pool's connections (a later call opens a new pool)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()

    # ----------------------------------------------------------- private

    def _run(self, action: str, work: Callable[[Any], _T]) -> _T:
        """Run ``work`` in one transaction on a pooled connection (committed before returning), retrying
        serialisation failures and deadlocks while time is left; failures become :class:`StoreError`."""
        try:
            import psycopg
            import psycopg_pool
        except ImportError as exc:  # a dependency of zooscope, but an install may lack it
            _log.error("ZOOSCOPE_STORE_URL names PostgreSQL but %s is not installed: pip install "
                       "'psycopg[binary]>=3.2' psycopg-pool", exc.name)
            raise StoreError(pg_people_message(action, "other", self.busy_timeout)) from exc
        if time.monotonic() < self._down_until:
            raise StoreError(pg_people_message(action, self._down_reason, self.busy_timeout))
        deadline = time.monotonic() + self.busy_timeout
        delay, remake = 0.01, False
        while True:
            try:
                with self._ready_pool().connection(timeout=CONNECT_TIMEOUT_S) as conn:
                    if not self._schema_ok:
                        self._ensure_schema(conn, remake)
                    with conn.transaction():
                        result = work(conn)
                self._reached = True
                return result
            except psycopg_pool.PoolTimeout as exc:  # (a psycopg.OperationalError: caught first)
                problem = self._probe()  # the database refuses us, or every pooled connection is in use
                raise self._store_error(action, problem or exc, None if problem else "busy") from exc
            except psycopg.Error as exc:
                if getattr(exc, "sqlstate", None) == "42P01" and not remake:  # tables dropped, or a new database
                    self._schema_ok, remake = False, True  # behind the same URL: make them again, once
                    continue
                if getattr(exc, "sqlstate", None) in PG_RETRY_CODES and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.25)
                    continue
                raise self._store_error(action, exc) from exc
            except (SchemaTooNew, OSError) as exc:
                raise self._store_error(action, exc) from exc

    def _ready_pool(self) -> Any:
        """The pool, after a direct connection proved the database answers when the last call did not reach
        it: a refused or unknown login fails at once rather than after the pool's wait, and a database back
        after an outage gets a fresh pool rather than one waiting out its reconnection back-off."""
        if not self._reached:
            problem = self._probe()
            if problem is not None:
                raise problem
        return self._pool_now()

    def _pool_now(self) -> Any:
        from psycopg_pool import ConnectionPool

        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                pool = ConnectionPool(self._conninfo(), min_size=1, max_size=POOL_MAX, open=False,
                                      timeout=CONNECT_TIMEOUT_S, check=ConnectionPool.check_connection,
                                      configure=self._configure, name="zooscope-store")
                pool.open(wait=False)
                self._pool, self._pool_pid = pool, os.getpid()
            return self._pool

    def _conninfo(self) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        given = conninfo_to_dict(self.url)
        defaults = {"connect_timeout": str(CONNECT_TIMEOUT_S), "application_name": "zooscope"}
        return make_conninfo(self.url, **{k: v for k, v in defaults.items() if k not in given})

    def _configure(self, conn: Any) -> None:
        """Each new connection waits for locks at most the busy timeout (then the store says "busy")."""
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(self.busy_timeout * 1000)}ms",))
        conn.commit()

    def _ensure_schema(self, conn: Any, remake: bool = False) -> None:
        """Create the tables on first use (idempotent; serialised between replicas by an advisory lock),
        and refuse a database set up by a newer zooscope. ``remake``: run the CREATEs even at this version."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            exists = conn.execute("SELECT to_regclass('zooscope_schema') IS NOT NULL").fetchone()[0]
            row = conn.execute("SELECT version FROM zooscope_schema").fetchone() if exists else None
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(version, SCHEMA_VERSION)
            if version < SCHEMA_VERSION or remake:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT INTO zooscope_schema (version) VALUES (%s) ON CONFLICT (singleton) "
                             "DO UPDATE SET version = EXCLUDED.version", (SCHEMA_VERSION,))
                _log.info("analysis store %s: schema version %d created (was %d)", self, SCHEMA_VERSION, version)
        self._schema_ok = True

    def _probe(self) -> BaseException | None:
        """Why the pool found no connection: connect once directly and return libpq's error (None if it connects)."""
        import psycopg

        try:
            psycopg.connect(self._conninfo()).close()
        except psycopg.Error as exc:
            return exc
        return None

    def _store_error(self, action: str, exc: BaseException, reason: str | None = None) -> StoreError:
        reason = reason or pg_reason(exc)
        _log.warning("analysis store %s failed (%s): %s", self, reason, str(exc).strip() or type(exc).__name__)
        if reason in {"unreachable", "denied", "missing"}:
            self._down_until, self._down_reason, self._reached = time.monotonic() + DOWN_HOLD_S, reason, False
            self.close()  # the next call that gets through opens a fresh pool
        return StoreError(pg_people_message(action, reason, self.busy_timeout))

