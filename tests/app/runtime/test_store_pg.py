"""The PostgreSQL store's own machinery: schema made once by racing replicas, and failures told to people.

The guarantees it shares with SQLite (round trips, ids, concurrency, budget, owners, SIGKILL) are
checked on both backends by ``test_store.py``; these are PostgreSQL's alone: a read-only database,
a database that is down, a wrong password, connections cut by the server.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from app.runtime.store import SCHEMA_VERSION, Store, StoreError
from tests.app.runtime.test_store import raw

pytest_plugins = ["tests.pg"]  # pg_server, pg_url: a throwaway PostgreSQL


def test_postgresql_schema_is_versioned_and_made_once_when_replicas_start_together(pg_url):
    replicas = [Store(pg_url) for _ in range(6)]
    start, errors = threading.Barrier(6), []

    def first_save(store: Store) -> None:
        start.wait()
        try:
            store.save("k", {}, {})
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=first_save, args=(s,)) for s in replicas]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    assert raw(replicas[0], "SELECT version FROM zooscope_schema") == [(SCHEMA_VERSION,)]
    assert len(replicas[0].recent(10)) == 6 and replicas[0].integrity_check() == "ok"
    for store in replicas:
        store.close()


# ------------------------------------------------------------------- failures


def test_postgresql_read_only_gives_not_saved_and_reads_still_work(pg_server, pg_url):
    link = Store(pg_url).save("k", {}, {"x": np.arange(3)})
    standby_like = Store(pg_url.replace("?options=", "?options=-cdefault_transaction_read_only%3Don%20"))
    with pytest.raises(StoreError, match=r"^Not saved: the database that keeps shared analyses is read-only"):
        standby_like.save("k", {}, {})
    assert standby_like.load(link).arrays["x"].tolist() == [0, 1, 2]


def test_postgresql_down_gives_one_message_fast_and_no_detail(pg_server, caplog):
    store = Store(f"postgresql://zooscope:hunter2@127.0.0.1:{pg_server.port + 1}/postgres")  # nothing listens
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        with pytest.raises(StoreError) as info:
            store.save("k", {}, {})
        first_s = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"^Could not read saved analyses: .*cannot be reached right now"):
            store.recent(5)
        again_s = time.monotonic() - started
    message = str(info.value)
    assert message.startswith("Not saved: the database that keeps shared analyses cannot be reached right now")
    assert "still on screen" in message and "127.0.0.1" not in message and "hunter2" not in message
    assert first_s < 12 and again_s < 0.1, (first_s, again_s)
    assert "refused" in caplog.text.lower() and "hunter2" not in caplog.text, "the log has the detail, no password"
    store.close()


def test_postgresql_wrong_password_says_so_without_the_password(pg_server, caplog):
    store = Store(pg_server.url(password="not-the-password"))
    with caplog.at_level(logging.WARNING), pytest.raises(StoreError) as info:
        store.load("A" * 22)
    assert str(info.value).startswith("Could not read saved analyses: the database that keeps shared analyses "
                                      "refused zooscope's login")
    assert "password authentication failed" in caplog.text and "not-the-password" not in caplog.text
    assert "not-the-password" not in repr(store)
    store.close()


def test_postgresql_connections_cut_by_the_server_are_replaced(pg_server, pg_url):
    """A failover or a restart drops every connection: the pool notices and opens new ones, losing nothing."""
    store = Store(pg_url)
    link = store.save("k", {}, {"x": np.arange(4)})
    pg_server.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'zooscope' AND pid <> pg_backend_pid()")
    assert store.load(link).arrays["x"].tolist() == [0, 1, 2, 3]
    assert store.load(store.save("k", {}, {})) is not None
    store.close()


# ------------------------------------------------------------------- the throwaway server itself


def test_missing_server_binaries_skip_locally_and_fail_under_ci(monkeypatch):
    import tests.pg

    monkeypatch.setattr(tests.pg, "pg_bindir", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y postgresql"):
        tests.pg.require_pg()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        tests.pg.require_pg()


def test_the_server_runs_unprivileged_on_loopback_with_a_password(pg_server):
    import psycopg

    with psycopg.connect(pg_server.url()) as conn:
        user = conn.execute("SELECT usename FROM pg_user WHERE usesuper").fetchone()[0]
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
        methods = {r[0] for r in conn.execute("SELECT auth_method FROM pg_hba_file_rules")}
    assert (user, listen) == ("zooscope", "127.0.0.1") and methods == {"scram-sha-256"}
    owner = (pg_server.root / "data").stat().st_uid
    assert owner != 0, "the data folder (and so the server) belongs to an unprivileged user"


def test_tables_dropped_behind_a_running_store_are_made_again(pg_url):
    store = Store(pg_url)
    store.save("k", {}, {})
    raw(store, "DROP TABLE zooscope_sharing, zooscope_analyses")  # the version row stays
    assert store.load(store.save("k", {}, {"x": np.ones(1)})) is not None and len(store.recent(5)) == 1
    raw(store, "DROP TABLE zooscope_sharing, zooscope_analyses, zooscope_schema")
    assert len(store.recent(5)) == 0 and store.integrity_check() == "ok"
    store.close()
