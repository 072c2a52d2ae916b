"""What the analysis store says when the machine fails it: SQLite and OS errors sorted, and told to people.

A failure is sorted into full / read-only / busy / damaged / newer / other, and each kind
comes with what to do about it. No streamlit; :mod:`app.runtime.store` raises these.
"""

from __future__ import annotations

import errno
import sqlite3

__all__ = ["SchemaTooNew", "StoreError", "is_busy", "megabytes", "people_message"]


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
