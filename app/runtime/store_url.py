"""Where the analysis store lives: ``ZOOSCOPE_STORE_URL``, read into a :class:`StoreLocation`.

- unset or empty: the SQLite file ``$ZOOSCOPE_HOME/analyses.sqlite3`` (the embedded default);
- ``sqlite:///abs/path/analyses.sqlite3``: that SQLite file;
- ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``, with libpq's query
  parameters such as ``?sslmode=require``): PostgreSQL through psycopg 3 and a small pool.

A URL that is none of these raises :class:`StoreUrlError`, whose message says what was wrong
and what to write instead. Passwords never leave this module in clear: :func:`redacted` is what
logs and ``repr`` show. No streamlit, no database driver: psycopg is imported by the
PostgreSQL backend only when a store there is first used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import platformdirs

__all__ = ["STORE_URL_ENV", "StoreLocation", "StoreUrlError", "default_store_path", "parse_store_url",
           "redacted", "store_location"]

STORE_URL_ENV = "ZOOSCOPE_STORE_URL"
_PG_SCHEMES = ("postgresql", "postgres")
_SECRET_PARAMS = {"password", "sslpassword"}


class StoreUrlError(ValueError):
    """``ZOOSCOPE_STORE_URL`` is not a store URL zooscope understands; the message says what to write."""


@dataclass(frozen=True)
class StoreLocation:
    """One analysis store: a SQLite file (``path``) or a PostgreSQL database (``url``, with its password)."""

    backend: str  # "sqlite" | "postgresql"
    path: Path | None = None
    url: str = field(default="", repr=False)

    def __str__(self) -> str:
        return str(self.path) if self.backend == "sqlite" else redacted(self.url)


def default_store_path() -> Path:
    """Where analyses are saved by default: ``$ZOOSCOPE_HOME/analyses.sqlite3`` (a per-user data folder by default)."""
    home = os.environ.get("ZOOSCOPE_HOME") or platformdirs.user_data_dir("zooscope")
    return Path(home) / "analyses.sqlite3"


def store_location() -> StoreLocation:
    """The store this process uses: ``ZOOSCOPE_STORE_URL``, or the default SQLite file when it is unset.

    Raises:
        StoreUrlError: the variable is set to something that is not a store URL.
    """
    text = os.environ.get(STORE_URL_ENV, "").strip()
    if not text:
        return StoreLocation("sqlite", path=default_store_path())
    return parse_store_url(text)


def parse_store_url(text: str) -> StoreLocation:
    """A store URL read: ``sqlite:///abs/path`` or ``postgresql://...``.

    Raises:
        StoreUrlError: anything else, with what to write instead.
    """
    if not isinstance(text, str) or not text.strip():
        raise StoreUrlError(f"{STORE_URL_ENV} is empty; leave it unset for the SQLite default, or write "
                            "sqlite:///abs/path/analyses.sqlite3 or postgresql://user:password@host:5432/dbname.")
    text = text.strip()
    scheme = text.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text) else ""
    if scheme == "sqlite":
        return StoreLocation("sqlite", path=_sqlite_path(text))
    if scheme in _PG_SCHEMES:
        _check_pg(text)
        return StoreLocation("postgresql", url=text)
    shown = redacted(text) if scheme else text[:80]
    raise StoreUrlError(
        f"{STORE_URL_ENV}={shown!r} is not a store URL zooscope knows. Write sqlite:///abs/path/analyses.sqlite3 "
        "for a SQLite file, or postgresql://user:password@host:5432/dbname for PostgreSQL (unset: the SQLite "
        "file in ZOOSCOPE_HOME)."
    )


def _sqlite_path(text: str) -> Path:
    parts = urlsplit(text)
    path = unquote(parts.path)
    if parts.netloc or not text.lower().startswith("sqlite:///") or not path.startswith("/") or path == "/":
        raise StoreUrlError(f"{STORE_URL_ENV}={text!r}: a SQLite store URL names an absolute file path after three "
                            "slashes, e.g. sqlite:///var/lib/zooscope/analyses.sqlite3.")
    if parts.query or parts.fragment:
        raise StoreUrlError(f"{STORE_URL_ENV}={text!r}: a SQLite store URL takes no ?options or #fragment; "
                            "write only sqlite:///abs/path/analyses.sqlite3.")
    return Path(path)


def _check_pg(text: str) -> None:
    if "#" in text:  # said before anything is parsed: a '#' cuts the URL short, in the middle of a password
        raise StoreUrlError(f"{STORE_URL_ENV} holds a '#', which ends a URL; percent-encode a '#' in the "
                            "password as %23 (and '@' as %40, ':' as %3A, '/' as %2F).")
    try:
        _ = urlsplit(text).port  # a port that is not a number raises here, before any connection is tried
    except ValueError:
        raise StoreUrlError(f"{STORE_URL_ENV}={redacted(text)!r}: the port is not a number; write "
                            "postgresql://user:password@host:5432/dbname.") from None


def redacted(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable store URL>"
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, "***" if parts.fragment else ""))
