"""ZOOSCOPE_STORE_URL: SQLite by default, a sqlite:/// file, or PostgreSQL; anything else refused with advice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.runtime import share
from app.runtime.store import Store, StoreError
from app.runtime.store_url import STORE_URL_ENV, StoreLocation, StoreUrlError, parse_store_url, redacted, store_location


def test_unset_is_the_sqlite_file_in_zooscope_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))
    for value in (None, "", "  "):
        if value is None:
            monkeypatch.delenv(STORE_URL_ENV, raising=False)
        else:
            monkeypatch.setenv(STORE_URL_ENV, value)
        assert store_location() == StoreLocation("sqlite", path=tmp_path / "analyses.sqlite3")


@pytest.mark.parametrize("url, path", [
    ("sqlite:///var/lib/zooscope/analyses.sqlite3", "/var/lib/zooscope/analyses.sqlite3"),
    ("SQLITE:///tmp/a%20b.sqlite3", "/tmp/a b.sqlite3"),
])
def test_sqlite_urls_name_an_absolute_file(url, path):
    assert parse_store_url(url) == StoreLocation("sqlite", path=Path(path))


@pytest.mark.parametrize("url", [
    "postgresql://zooscope:s3cret@db.internal:5432/zooscope",
    "postgres://zooscope@db.internal/zooscope?sslmode=require",
    "postgresql:///zooscope?host=/run/postgresql",
])
def test_postgresql_urls_are_kept_for_libpq(url):
    location = parse_store_url(url)
    assert location.backend == "postgresql" and location.url == url and location.path is None
    assert "s3cret" not in str(location) and "s3cret" not in repr(location)


@pytest.mark.parametrize("url, advice", [
    ("mysql://u:p@h/db", "is not a store URL zooscope knows"),
    ("/data/analyses.sqlite3", "sqlite:///abs/path"),
    ("sqlite://relative.sqlite3", "absolute file path after three slashes"),
    ("sqlite:relative.sqlite3", "absolute file path after three slashes"),
    ("sqlite:///", "absolute file path after three slashes"),
    ("sqlite:///a.sqlite3?mode=ro", "takes no"),
    ("postgresql://u:p@h:five/db", "port is not a number"),
    ("postgresql://u:pa#ss@h/db", "percent-encode"),
    ("postgresql://u:pa#ss@h:5432/db", "holds a '#'"),
])
def test_other_urls_are_refused_with_what_to_write(url, advice):
    with pytest.raises(StoreUrlError, match=advice) as info:
        parse_store_url(url)
    assert "p@" not in str(info.value) or url.startswith("/"), "no password in the message"


def test_passwords_are_redacted_in_user_part_and_parameters():
    assert redacted("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redacted("postgresql://u@h/db?password=x&sslmode=require") == \
        "postgresql://u@h/db?password=***&sslmode=require"
    assert redacted("postgresql://h/db") == "postgresql://h/db"


def test_a_store_takes_a_path_a_url_or_a_location(tmp_path):
    by_path = Store(tmp_path / "a.sqlite3")
    by_url = Store(f"sqlite://{tmp_path}/a.sqlite3")
    assert by_path.location == by_url.location and by_url.backend == "sqlite"
    link = by_path.save("k", {}, {"x": np.ones(2)})
    assert by_url.load(link).arrays["x"].tolist() == [1.0, 1.0]
    pg = Store("postgresql://u:hunter2@127.0.0.1:1/db")
    assert pg.backend == "postgresql" and pg.path is None and "hunter2" not in repr(pg)


def test_the_server_store_follows_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(STORE_URL_ENV, f"sqlite://{tmp_path}/elsewhere.sqlite3")
    assert share.store().path == tmp_path / "elsewhere.sqlite3"
    monkeypatch.setenv(STORE_URL_ENV, "postgresql://u:p@127.0.0.1:1/db")
    assert share.store().backend == "postgresql"


def test_a_bad_setting_gives_people_one_message_and_the_log_the_advice(monkeypatch, caplog):
    monkeypatch.setenv(STORE_URL_ENV, "mongodb://h/db")
    with pytest.raises(StoreError, match=r"^Shared analyses are unavailable: this server's ZOOSCOPE_STORE_URL"):
        share.store()
    assert "sqlite:///abs/path" in caplog.text
    assert share.shared_by("someone") == [] and share.published() == [], "lists stay empty, the page still draws"
    rows, problem = share.shared_by_checked("someone")  # ... and Home can say why, instead of "nothing shared"
    assert rows == [] and problem.startswith("Shared analyses are unavailable")
    with pytest.raises(share.LinkProblem, match="Shared analyses are unavailable"):
        share.open_link("A" * 22)


def test_home_says_the_shares_cannot_be_listed_while_the_store_is_unavailable(monkeypatch):
    from tests.app.apptest import open_page

    monkeypatch.setenv(STORE_URL_ENV, "mongodb://h/db")
    at = open_page("home")
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("cannot be listed right now" in w and "unavailable" in w for w in warnings), warnings
    assert not any("Nothing shared from this browser yet" in c.value for c in at.caption)
