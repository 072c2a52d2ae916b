"""A throwaway PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` as an unprivileged user, on loopback.

Import the fixtures into a test module (``from tests.pg import pg_server, pg_url``). The server starts
once per test process, the first time a test asks for it (about 2-3 s), in a temporary folder
owned by a system user (``zooscope-pg``, created if absent; ``nobody`` if it cannot be), listens
on a free loopback port with its Unix socket in that folder, and asks for a password
(scram-sha-256). It is stopped with ``pg_ctl stop -m immediate`` and its folder removed when the
test session ends, whatever the tests did (pytest's config cleanup, and ``atexit`` besides).

Without ``initdb``/``pg_ctl`` (Debian: ``apt-get install postgresql``, binaries in
``/usr/lib/postgresql/<version>/bin``) the tests that need it skip with the reason, unless the
``CI`` variable is set: then they fail.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.app.serving import free_port

PG_USER = "zooscope-pg"  # the system user that owns and runs the server (PostgreSQL refuses to run as root)
DB_SUPERUSER = "zooscope"
_lock = threading.Lock()
_server: PgServer | None = None


def pg_bindir() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent  # Debian's symlinks lead to /usr/lib/postgresql/<version>/bin
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return candidates[-1].parent if candidates else None


def require_pg() -> Path:
    """The PostgreSQL binaries' folder; skip (fail under CI) when they are missing."""
    bindir = pg_bindir()
    if bindir is not None and (bindir / "pg_ctl").exists():
        return bindir
    reason = ("PostgreSQL's initdb/pg_ctl are missing: install Debian's postgresql (apt-get install -y postgresql) "
              "to run the PostgreSQL store tests")
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set, so missing server binaries are a failure)")
    pytest.skip(reason)


@dataclass
class PgServer:
    """A running throwaway server: where it is and how to reach it."""

    bindir: Path
    root: Path  # the temporary folder: data/, sockets, log, password file
    port: int
    password: str
    run_as: list[str]  # the command prefix that runs a binary as the unprivileged user ([] when not root)

    def url(self, dbname: str = "postgres", *, search_path: str = "", password: str | None = None) -> str:
        """A ``postgresql://`` URL for ``dbname`` (optionally with its own ``search_path``)."""
        secret = quote(self.password if password is None else password, safe="")
        url = f"postgresql://{DB_SUPERUSER}:{secret}@127.0.0.1:{self.port}/{dbname}"
        return url + (f"?options=-csearch_path%3D{search_path}" if search_path else "")

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run one statement as the superuser, in autocommit (CREATE DATABASE cannot run in a transaction)."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(sql)

    def new_schema_url(self) -> str:
        """A URL whose tables land in a fresh schema of their own: one empty store per test, made in milliseconds."""
        name = "t_" + secrets.token_hex(6)
        self.execute(f"CREATE SCHEMA {name}")
        return self.url(search_path=name)

    def new_database_url(self) -> str:
        """A URL of a fresh, empty database."""
        name = "db_" + secrets.token_hex(6)
        self.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def pg_ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *args],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def stop(self) -> None:
        """``pg_ctl stop -m immediate``: no checkpoint, just gone (the data folder is thrown away next)."""
        self.pg_ctl("stop", "-m", "immediate", "-w", timeout=30)

    def start(self) -> None:
        """(Re)start the server on its port; raise with its log when it does not come up."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=100"
        done = self.pg_ctl("start", "-w", "-t", "60", "-l", str(self.root / "server.log"), "-o", options, timeout=90)
        if done.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-3000:] if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed ({done.returncode}): {done.stderr}\n{log}")


def _run_as_user() -> tuple[list[str], int | None, int | None]:
    """How to run the server's binaries unprivileged: ``runuser -u USER --`` when we are root."""
    if os.geteuid() != 0:
        return [], None, None
    import pwd

    user = PG_USER
    try:
        pwd.getpwnam(user)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                              capture_output=True, check=False)
        if made.returncode != 0:
            user = "nobody"
    entry = pwd.getpwnam(user)
    return ["runuser", "-u", user, "--"], entry.pw_uid, entry.pw_gid


def start_server() -> PgServer:
    """initdb a new cluster in a temporary folder and start it; the caller stops it."""
    bindir = require_pg()
    run_as, uid, gid = _run_as_user()
    root = Path(tempfile.mkdtemp(prefix="zooscope-pg-"))
    password = secrets.token_urlsafe(12)
    (root / "pw").write_text(password + "\n")
    if uid is not None:
        for path in (root, root / "pw"):
            os.chown(path, uid, gid)
    os.chmod(root, 0o700)
    init = subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(root / "data"), "-U", DB_SUPERUSER,
                           "--pwfile", str(root / "pw"), "-A", "scram-sha-256", "-E", "UTF8", "--locale", "C",
                           "--no-sync"], capture_output=True, text=True, timeout=120, check=False)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr[-3000:]}")
    server = PgServer(bindir, root, free_port(), password, run_as)
    try:
        server.start()
    except BaseException:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def _shutdown() -> None:
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(request) -> PgServer:
    """The session's PostgreSQL server, started on first use and stopped when the session ends."""
    global _server
    with _lock:
        if _server is None:
            _server = start_server()
            request.config.add_cleanup(_shutdown)
            atexit.register(_shutdown)
        return _server


@pytest.fixture
def pg_url(pg_server) -> str:
    """A ``postgresql://`` URL of an empty store of this test's own (a fresh schema)."""
    return pg_server.new_schema_url()
