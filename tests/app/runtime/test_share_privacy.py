"""Shares are private unless published: the store lists a share to its owner only, only the owner
publishes it, the server can turn the gallery off, and stores written before owners existed keep
every row and open as owned by nobody."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from app.runtime import share
from app.runtime.store import SCHEMA_VERSION, Store, StoreError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "store-v1" / "analyses.sqlite3"


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(tmp_path / "analyses.sqlite3")
    yield store
    store.close()


def ids(summaries) -> list[str]:
    return [s.id for s in summaries]


def test_a_share_is_listed_to_its_owner_only(store):
    alice = store.save("attribution", {"i": 1}, {"x": np.zeros(3)}, title="alice's", owner="a" * 16)
    bob = store.save("attribution", {"i": 2}, {}, title="bob's", owner="b" * 16)
    nobodys = store.save("attribution", {"i": 3}, {}, title="nobody's")

    assert ids(store.recent(owner="a" * 16)) == [alice]
    assert ids(store.recent(owner="b" * 16)) == [bob]
    assert store.recent(owner="") == [], "no owner owns nothing, not every unowned share"
    assert store.recent(published_only=True) == [], "nothing is published until its owner publishes it"
    assert ids(store.recent()) == [nobodys, bob, alice], "the unfiltered list (for operators) still has them all"
    assert store.load(alice).owner == "a" * 16 and store.load(nobodys).owner == ""
    assert store.load(alice).published_at is None


def test_only_the_owner_publishes_and_publishing_deletes_nothing(store):
    link = store.save("attribution", {"i": 1}, {"x": np.arange(4.0)}, title="t", owner="owner")
    before = store.load(link)

    assert store.publish(link, "someone else") is False
    assert store.publish(link, "") is False
    assert store.publish("A" * 22, "owner") is False, "no such share"
    assert store.recent(published_only=True) == [] and store.published_at(link) is None

    assert store.publish(link, "owner") is True
    assert store.publish(link, "owner") is True, "publishing twice is harmless"
    assert ids(store.recent(published_only=True)) == [link]
    assert ids(store.recent(owner="owner", published_only=True)) == [link]
    assert store.recent(owner="someone else", published_only=True) == []
    assert store.published_at(link) is not None

    assert store.publish(link, "someone else", published=False) is False, "nor can anyone else withdraw it"
    assert ids(store.recent(published_only=True)) == [link]
    assert store.publish(link, "owner", published=False) is True
    assert store.recent(published_only=True) == []

    after = store.load(link)
    assert after.meta == before.meta and after.title == before.title
    assert np.array_equal(after.arrays["x"], before.arrays["x"])
    assert ids(store.recent()) == [link] and store.integrity_check() == "ok"


def test_the_gallery_lists_the_newest_published_first(store):
    first, second = (store.save("k", {"i": i}, {}, owner="o") for i in range(2))
    store.publish(second, "o")
    store.publish(first, "o")
    assert ids(store.recent(published_only=True)) == [first, second], "published last, listed first"
    assert ids(store.recent(owner="o")) == [second, first], "the owner's list goes by when it was shared"


def test_a_schema_1_store_is_upgraded_in_place_without_losing_a_row(tmp_path):
    path = tmp_path / "analyses.sqlite3"
    shutil.copy(FIXTURE, path)
    with contextlib.closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1, "the fixture is a schema-1 store"
        rows_before = raw.execute("SELECT * FROM analyses ORDER BY seq").fetchall()
    assert rows_before

    store = Store(path)
    old_ids = ids(store.recent(1000))
    assert old_ids == [r[1] for r in reversed(rows_before)]
    for link in old_ids:
        saved = store.load(link)
        assert saved.owner == "" and saved.published_at is None, "an old share is owned by nobody, unpublished"
        assert store.publish(link, "any visitor") is False, "no one can publish a share no one owns"
    assert store.recent(published_only=True) == []
    new = store.save("k", {}, {"x": np.zeros(2)}, owner="v")
    assert ids(store.recent(owner="v")) == [new]
    assert store.integrity_check() == "ok"
    store.close()

    with contextlib.closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        rows_after = raw.execute("SELECT * FROM analyses WHERE id != ? ORDER BY seq", (new,)).fetchall()
        assert rows_after == rows_before, "every old row is byte for byte as it was"
        assert raw.execute("SELECT count(*) FROM sharing").fetchone()[0] == 1


def test_a_failed_publish_says_not_published_and_keeps_the_share(store):
    link = store.save("k", {}, {}, owner="o")
    store.close()
    with contextlib.closing(sqlite3.connect(store.path, timeout=0)) as writer:
        writer.execute("BEGIN IMMEDIATE")  # another writer holds the store
        busy = Store(store.path, busy_timeout=0.2)
        with pytest.raises(StoreError, match=r"^Not published: .*busy.*Your share and its link are kept"):
            busy.publish(link, "o")
        writer.execute("ROLLBACK")
    assert busy.load(link) is not None and busy.recent(published_only=True) == []
    busy.close()


# --------------------------------------------------------------- the server's switch


@pytest.fixture
def server_store(zooscope_home):
    """The server's store (``share.store()``), in this test's own ZOOSCOPE_HOME."""
    return share.store()


def test_the_gallery_is_on_unless_the_server_turns_it_off(monkeypatch):
    monkeypatch.delenv(share.GALLERY_ENV, raising=False)
    assert share.gallery_on()
    monkeypatch.setenv(share.GALLERY_ENV, "0")
    assert not share.gallery_on()
    monkeypatch.setenv(share.GALLERY_ENV, "1")
    assert share.gallery_on()


def test_with_the_gallery_off_nothing_is_listed_or_published(server_store, monkeypatch):
    published = server_store.save("k", {}, {}, owner="o")
    share.publish(published, "o")
    kept = server_store.save("k", {}, {}, owner="o")
    assert ids(share.published()) == [published]

    monkeypatch.setenv(share.GALLERY_ENV, "0")
    assert share.published() == [], "the gallery is gone for everyone"
    with pytest.raises(share.NotPublished, match="no gallery"):
        share.publish(kept, "o")
    assert ids(share.shared_by("o")) == [kept, published], "the owner still finds their shares"

    monkeypatch.setenv(share.GALLERY_ENV, "1")
    assert ids(share.published()) == [published], "turned back on, the gallery is as it was"


def test_publishing_someone_elses_share_is_refused_with_a_message(server_store):
    link = server_store.save("k", {}, {}, owner="o")
    with pytest.raises(share.NotPublished, match="only the browser that shared an analysis can publish it"):
        share.publish(link, "someone else")
    assert share.published() == [] and not share.is_published(link)
    assert share.shared_by("someone else") == [] and share.shared_by("") == []
