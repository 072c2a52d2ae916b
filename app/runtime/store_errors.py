"""What the analysis store says when the machine fails it: SQLite, PostgreSQL and OS errors sorted, and told to people.

A failure is sorted into full / read-only / busy / damaged / newer / other (and, for PostgreSQL,
unreachable / denied / missing), and each kind comes with what to do about it. A SQLite message
names the file's trouble; a PostgreSQL message names no host, user or database (people see it on
the page; the server log gets the detail). No streamlit and no database driver here (errors are
sorted by their SQLSTATE); :mod:`app.runtime.store` raises these.
"""

from __future__ import annotations

import errno
import sqlite3

__all__ = ["SchemaTooNew", "StoreError", "is_busy", "megabytes", "people_message", "pg_people_message", "pg_reason"]


class StoreError(RuntimeError):
    """The analysis store could not save or read; the message says why and what to do."""


class SchemaTooNew(Exception):
    """The store file was written by a newer zooscope (a schema version this one does not know)."""

    def __init__(self, version: int, supported: int) -> None:
        super().__init__(f"schema version {version}; this zooscope reads up to {supported}")


_FULL = {errno.ENOSPC, errno.EDQUOT}
_READ_ONLY = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR}


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed because another connection holds the lock (worth retrying)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text


def _reason(exc: BaseException) -> str:
    """Sort a failure into full / read-only / busy / damaged / newer / other."""
    if isinstance(exc, SchemaTooNew):
        return "newer"
    if isinstance(exc, OSError):
        return "full" if exc.errno in _FULL else "read-only" if exc.errno in _READ_ONLY else "other"
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL") or "disk is full" in str(exc):
        return "full"
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return "read-only"
    if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
        return "busy"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return "damaged"
    return "other"


_WHAT_TO_DO = {
    "full": "the analysis store is full ({detail}). {still}free some disk space or set ZOOSCOPE_HOME "
    "to a folder on a disk with room, then try again.",
    "read-only": "the analysis store is read-only or cannot be opened ({detail}). {still}set ZOOSCOPE_HOME "
    "to a folder you can write to, then try again.",
    "busy": "the analysis store stayed busy for {timeout:g} s (other saves in progress). {still}"
    "try again in a moment.",
    "damaged": "the analysis store file is damaged ({detail}). {still}move the file aside "
    "(zooscope starts a new one) and try again.",
    "newer": "the analysis store was written by a newer zooscope ({detail}). {still}upgrade zooscope "
    "or set ZOOSCOPE_HOME to another folder.",
    "other": "the analysis store failed ({detail}). {still}try again; if it keeps failing, "
    "set ZOOSCOPE_HOME to another folder.",
}


def megabytes(n_bytes: int) -> str:
    """``n_bytes`` in MB for people: "1,024", "2.5", "0.01"."""
    text = f"{n_bytes / 2**20:,.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# What failed -> how the message starts, and what is still fine.
_ACTIONS = {
    "save": ("Not saved: ", "Your analysis is still on screen; "),
    "publish": ("Not published: ", "Your share and its link are kept; "),
    "read": ("Could not read saved analyses: ", "To fix it, "),
}


def people_message(action: str, exc: BaseException, timeout: float) -> str:
    """What a failed ``action`` ("save", "publish" or "read") tells people: what went wrong, and what to do."""
    prefix, still = _ACTIONS[action]
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return prefix + _WHAT_TO_DO[_reason(exc)].format(detail=detail, still=still, timeout=timeout)


# ------------------------------------------------------------------------------------------ PostgreSQL

# SQLSTATE classes and codes -> kind (https://www.postgresql.org/docs/current/errcodes-appendix.html)
_PG_CODES = {
    "28000": "denied", "28P01": "denied", "42501": "denied",  # bad login, wrong password, no grant
    "3D000": "missing", "3F000": "missing",  # no such database / schema
    "25006": "read-only",  # read_only_sql_transaction: a standby, or a read-only role
    "53100": "full", "53200": "full",  # disk full, out of memory
    "55P03": "busy", "57014": "busy", "40001": "busy", "40P01": "busy", "53300": "busy",  # lock wait, timeouts
    "57P01": "unreachable", "57P02": "unreachable", "57P03": "unreachable",  # shutting down, starting up
    "XX001": "damaged", "XX002": "damaged",  # data / index corrupted
}
_PG_TEXTS = (
    ("password authentication failed", "denied"), ("no pg_hba.conf entry", "denied"),
    ("role \"", "denied"), ("permission denied", "denied"),
    ("does not exist", "missing"),
    ("too many clients", "busy"), ("remaining connection slots", "busy"),
)
# Kinds worth trying again at once (another transaction was in the way), when time is left.
PG_RETRY_CODES = frozenset({"40001", "40P01"})


def pg_reason(exc: BaseException) -> str:
    """Sort a PostgreSQL (psycopg / psycopg_pool) failure into unreachable / denied / missing / full /
    read-only / busy / damaged / newer / other, by its SQLSTATE, else by libpq's words."""
    if isinstance(exc, SchemaTooNew):
        return "newer"
    code = getattr(exc, "sqlstate", None) or ""
    if code in _PG_CODES:
        return _PG_CODES[code]
    text = str(exc).lower()
    for words, kind in _PG_TEXTS:
        if words in text:
            return kind
    if code[:2] == "08" or type(exc).__name__ in {"OperationalError", "PoolTimeout", "PoolClosed"} or isinstance(
            exc, (ConnectionError, TimeoutError)):
        return "unreachable"  # class 08 connection exceptions; libpq's refused / timed out / unknown host
    return "other"


_PG_WHAT_TO_DO = {
    "unreachable": "the database that keeps shared analyses cannot be reached right now. {still}try again in a "
    "minute; if it keeps failing, ask the operator to check PostgreSQL and ZOOSCOPE_STORE_URL.",
    "denied": "the database that keeps shared analyses refused zooscope's login or access. {still}ask the "
    "operator to check the user, password and grants in ZOOSCOPE_STORE_URL.",
    "missing": "the database named in ZOOSCOPE_STORE_URL does not exist. {still}ask the operator to create it "
    "(createdb) or correct ZOOSCOPE_STORE_URL.",
    "full": "the database that keeps shared analyses is out of space. {still}ask the operator to free space on "
    "the PostgreSQL server, then try again.",
    "read-only": "the database that keeps shared analyses is read-only (a standby, or a read-only user). "
    "{still}ask the operator to point ZOOSCOPE_STORE_URL at the primary with a user that may write.",
    "busy": "the analysis store stayed busy for {timeout:g} s (other saves in progress). {still}try again in a moment.",
    "damaged": "the database that keeps shared analyses reports damaged data. {still}ask the operator to check "
    "the PostgreSQL server's log.",
    "newer": "the database that keeps shared analyses was set up by a newer zooscope. {still}upgrade zooscope "
    "on every replica, or point ZOOSCOPE_STORE_URL at another database.",
    "other": "the database that keeps shared analyses failed. {still}try again; if it keeps failing, ask the "
    "operator to look at the server log.",
}


def pg_people_message(action: str, reason: str, timeout: float) -> str:
    """What a failed ``action`` ("save", "publish" or "read") on PostgreSQL tells people, for a ``reason``
    of :func:`pg_reason`: what went wrong and what to do, without hosts, users or database names."""
    prefix, still = _ACTIONS[action]
    return prefix + _PG_WHAT_TO_DO.get(reason, _PG_WHAT_TO_DO["other"]).format(still=still, timeout=timeout)
