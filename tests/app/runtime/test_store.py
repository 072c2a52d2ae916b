"""The analysis store on both backends: exact round trips, unguessable ids, concurrency, limits, failures, crashes.

Every test that takes ``store`` or ``make_store`` runs twice: on a SQLite file and on PostgreSQL
(a throwaway server, ``tests/pg.py``; a fresh schema per test). Tests of one backend's own
machinery (WAL, a full disk, an unreachable database) say so in their names.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import sqlite3
import stat
import string
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import platformdirs
import pytest

from app.runtime.store import (
    LINK_ID_PATTERN,
    SCHEMA_VERSION,
    SavedAnalysis,
    Store,
    StoreError,
    default_store_path,
    is_valid_link_id,
)
from bench.store_crash import run_round

pytest_plugins = ["tests.pg"]  # pg_server, pg_url: a throwaway PostgreSQL

NOBODY = 65534


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path):
    """Stores on this test's own empty location, on the backend of the parameter; closed afterwards."""
    location = tmp_path / "analyses.sqlite3" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    stores: list[Store] = []

    def make(**options) -> Store:
        stores.append(Store(location, **options))
        return stores[-1]

    yield make
    for made in stores:
        made.close()


@pytest.fixture
def store(make_store) -> Store:
    return make_store()


def raw(store: Store, sql: str, args: tuple = ()) -> list[tuple]:
    """Run SQL on the store's database behind its back (``?`` placeholders; PostgreSQL's tables are prefixed)."""
    if store.backend == "sqlite":
        with contextlib.closing(sqlite3.connect(store.path)) as conn, conn:
            return conn.execute(sql, args).fetchall()
    import psycopg

    sql = sql.replace("?", "%s").replace("FROM analyses", "FROM zooscope_analyses").replace(
        "UPDATE analyses", "UPDATE zooscope_analyses")
    with psycopg.connect(store.location.url) as conn:
        cursor = conn.execute(sql, args)
        return cursor.fetchall() if cursor.description else []


def sample_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "attributions": rng.standard_normal((3, 28, 28)).astype(np.float32),  # (B, H, W)
        "labels": np.array([7, -2, 2**40], dtype=np.int64),  # (B,)
        "mask": rng.random((4, 5)) > 0.5,  # (4, 5)
        "tokens": np.array(["[CLS]", "héllo", "😀"]),  # (T,)
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),  # (2, 3)
        "scalar": np.float64(np.nan),  # ()
    }


# ---------------------------------------------------------------- round trip


def test_round_trip_is_exact(store):
    meta = {"model": "mnist-attention", "params": {"n_steps": 50, "method": "gausslegendre"}, "delta": 1e-7}
    arrays = sample_arrays()
    link_id = store.save("integrated_gradients", meta, arrays, title="IG on a 7 — ✓")
    saved = store.load(link_id)
    assert isinstance(saved, SavedAnalysis)
    assert (saved.id, saved.kind, saved.title, saved.meta) == (link_id, "integrated_gradients", "IG on a 7 — ✓", meta)
    assert list(saved.arrays) == list(arrays)
    for name, want in arrays.items():
        got = saved.arrays[name]
        assert got.dtype == np.asarray(want).dtype and got.shape == np.shape(want), name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert saved.created_at.tzinfo is not None and saved.created_at.utcoffset().total_seconds() == 0


def test_meta_is_canonical_json(store):
    link_id = store.save("k", {"b": 1, "a": {"z": np.float32(0.5), "y": [1, 2]}}, {})
    [(text,)] = raw(store, "SELECT meta_json FROM analyses WHERE id = ?", (link_id,))
    assert text == '{"a":{"y":[1,2],"z":0.5},"b":1}'


def test_array_names_that_are_numpy_savez_parameters_round_trip(store):
    arrays = {"file": np.arange(3), "allow_pickle": np.ones(2, bool)}
    saved = store.load(store.save("k", {}, arrays))
    np.testing.assert_array_equal(saved.arrays["file"], [0, 1, 2])
    assert saved.arrays["allow_pickle"].dtype == bool


def test_recent_lists_newest_first_without_arrays(store):
    ids = [store.save("kind", {"i": i}, {"x": np.zeros(3)}, title=f"#{i}") for i in range(5)]
    recent = store.recent(limit=3)
    assert [s.id for s in recent] == ids[::-1][:3]
    assert [s.title for s in recent] == ["#4", "#3", "#2"]
    assert not hasattr(recent[0], "arrays")
    with pytest.raises(ValueError):
        store.recent(limit=0)


def test_nul_characters_are_refused_alike(store):
    with pytest.raises(ValueError, match="NUL"):
        store.save("k", {}, {}, title="a\x00b")
    assert store.load(store.save("k", {"note": "a\x00b"}, {})).meta == {"note": "a\x00b"}, "meta is JSON-escaped"


# ---------------------------------------------------------------------- ids


def test_ids_match_the_pattern_and_are_unique(store):
    ids = [store.save("k", {}, {}) for _ in range(200)]
    assert all(LINK_ID_PATTERN.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


BAD_IDS = ["", "' OR 1=1 --", "'; DROP TABLE analyses; --", "../../etc/passwd", "A" * 21, "A" * 23, "A" * 10_000,
           "A" * 21 + "=", "A" * 22 + "\n", "Ａ" * 22, "٣" * 22, None, 22]  # full-width letters; Arabic-Indic digits


@pytest.mark.parametrize("bad", BAD_IDS)
def test_malformed_ids_find_nothing_and_never_touch_the_database(tmp_path, bad):
    store = Store(tmp_path / "not-created" / "analyses.sqlite3")
    assert not is_valid_link_id(bad)
    assert store.load(bad) is None and store.published_at(bad) is None and store.publish(bad, "o") is False
    assert not (tmp_path / "not-created").exists()


def test_malformed_ids_never_touch_postgresql_either():
    store = Store("postgresql://nobody:secret@127.0.0.1:1/none")  # nothing listens on port 1
    assert all(store.load(bad) is None and store.publish(bad, "o") is False for bad in BAD_IDS)
    assert store._backend._pool is None, "no connection was even tried"


def test_unknown_well_formed_ids_find_nothing(store):
    store.save("k", {}, {"x": np.zeros(2)})
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + "-_"
    ids = {"".join(rng.choices(alphabet, k=22)) for _ in range(10_000 if store.backend == "sqlite" else 1000)}
    assert all(is_valid_link_id(i) for i in ids)
    assert [i for i in ids if store.load(i) is not None] == []


# --------------------------------------------------------- refused payloads


def test_object_arrays_are_refused(store):
    with pytest.raises(TypeError, match="pickle"):
        store.save("k", {}, {"tokens": np.array(["a", None], dtype=object)})
    assert store.recent() == []


def test_meta_must_be_json(store):
    with pytest.raises(TypeError, match="JSON"):
        store.save("k", {"weights": np.zeros(3)}, {})


def test_stored_pickle_is_never_unpickled(store):
    link_id = store.save("k", {}, {"x": np.zeros(1)})
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"evil": 1}], dtype=object))  # needs pickle to load
    raw(store, "UPDATE analyses SET arrays_npz = ? WHERE id = ?", (buffer.getvalue(), link_id))
    with pytest.raises(StoreError, match="damaged"):
        store.load(link_id)


def test_payload_over_the_limit_is_refused(make_store):
    with pytest.raises(StoreError, match=r"^Not saved: .*50 MB"):
        make_store().save("k", {}, {"big": np.zeros(51 * 2**20 // 8)})  # 51 MB of float64, never written
    small = make_store(max_payload_bytes=4096)
    small.save("k", {}, {"x": np.zeros(100)})
    with pytest.raises(StoreError, match="^Not saved"):
        small.save("k", {}, {"x": np.zeros(1000)})


# ------------------------------------------------------ the budget and the owners, alike on both backends


def _payload(i: int) -> tuple[dict, dict[str, np.ndarray]]:
    return {"i": f"{i:04d}"}, {"x": np.random.default_rng(i).standard_normal(256).astype(np.float32)}  # (256,)


def test_two_writers_cannot_take_the_store_past_its_budget(make_store):
    one = make_store()
    first = one.save("k", *_payload(0), title="t")
    [(row_bytes,)] = raw(one, "SELECT length(arrays_npz) + length(meta_json) + length(title) FROM analyses")
    budget_rows, tries = 4, 6
    writers = [make_store(max_store_bytes=budget_rows * row_bytes) for _ in range(2)]
    start, saved, refused = threading.Barrier(2), [first], []

    def write(store: Store, offset: int) -> None:
        start.wait()
        for i in range(tries):
            try:
                saved.append(store.save("k", *_payload(offset + i), title="t"))
            except StoreError as e:
                refused.append(str(e))

    threads = [threading.Thread(target=write, args=(w, 100 * (n + 1))) for n, w in enumerate(writers)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(saved) == budget_rows and len(refused) == 2 * tries - (budget_rows - 1)
    assert all(m.startswith("Not saved: this server's store of shared analyses is full") for m in refused), refused
    assert sorted(s.id for s in one.recent(100)) == sorted(saved), "exactly at the budget; nothing deleted"


def test_owners_alone_list_and_publish_their_shares(store):
    alice = store.save("attribution", {"i": 1}, {"x": np.zeros(3)}, title="alice's", owner="a" * 16)
    nobodys = store.save("attribution", {"i": 2}, {}, title="nobody's")
    assert [s.id for s in store.recent(owner="a" * 16)] == [alice] and store.recent(owner="") == []
    assert store.recent(published_only=True) == [] and store.load(nobodys).owner == ""
    assert store.publish(alice, "someone else") is False and store.publish(nobodys, "anyone") is False
    assert store.publish(alice, "a" * 16) is True and store.publish(alice, "a" * 16) is True
    assert [s.id for s in store.recent(published_only=True)] == [alice]
    when = store.published_at(alice)
    assert when is not None and when.utcoffset().total_seconds() == 0 and store.load(alice).published_at == when
    assert store.publish(alice, "a" * 16, published=False) is True and store.recent(published_only=True) == []
    assert store.published_at(alice) is None and store.integrity_check() == "ok"


# ------------------------------------------------------------------- schema


def test_sqlite_wal_mode_synchronous_full_and_schema_version(tmp_path):
    store = Store(tmp_path / "analyses.sqlite3")
    store.save("k", {}, {})
    conn = store._backend._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert store.integrity_check() == "ok"


def test_a_store_from_a_newer_zooscope_is_refused(make_store):
    store = make_store()
    store.save("k", {}, {})
    store.close()
    if store.backend == "sqlite":
        raw(store, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    else:
        raw(store, "UPDATE zooscope_schema SET version = version + 1")
    with pytest.raises(StoreError, match="newer zooscope"):
        make_store().save("k", {}, {})


def test_default_store_path(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))
    assert default_store_path() == tmp_path / "analyses.sqlite3"
    monkeypatch.delenv("ZOOSCOPE_HOME")
    assert default_store_path() == Path(platformdirs.user_data_dir("zooscope")) / "analyses.sqlite3"


# --------------------------------------------------------------- concurrency


def test_concurrent_saves_from_50_threads(store):
    ids: list[str] = []
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for i in range(20):
                ids.append(store.save("k", {"t": thread, "i": i}, {"x": np.full(4, thread * 100 + i)}))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(ids)) == 1000 and len(store.recent(1000)) == 1000
    for link_id in ids:
        saved = store.load(link_id)
        assert saved.arrays["x"][0] == saved.meta["t"] * 100 + saved.meta["i"]
    assert store.integrity_check() == "ok"


def test_a_locked_store_says_busy_and_then_saves(make_store):
    """Another writer holds the lock: the save waits its busy timeout, says "busy", and later saves."""
    store = make_store()
    store.save("k", {}, {})
    if store.backend == "sqlite":
        other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        release = lambda: (other.execute("COMMIT"), other.close())
    else:
        import psycopg

        other = psycopg.connect(store.location.url)
        other.execute("LOCK TABLE zooscope_analyses IN EXCLUSIVE MODE")
        release = lambda: (other.commit(), other.close())
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"^Not saved: the analysis store stayed busy for 0.3 s"):
        make_store(busy_timeout=0.3).save("k", {}, {})
    assert 0.25 < time.monotonic() - started < 3
    threading.Timer(0.3, release).start()
    assert make_store(busy_timeout=5).save("k", {}, {})  # waits for the lock, then saves


def test_acknowledged_saves_survive_sigkill(make_store):
    location = make_store().location
    result = run_round(location.path or location.url, seconds=1.0, writers=2)
    assert result.acknowledged > 10
    assert result.found == result.intact == result.acknowledged
    assert result.integrity == "ok"


# ------------------------------------------------------------ SQLite failures


@contextlib.contextmanager
def unprivileged():
    """Run the block as an ordinary user, since root ignores file permissions."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.seteuid(NOBODY)
    except PermissionError:
        pytest.skip("running as root without the right to drop privileges")
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def shared_dir():
    """A folder an unprivileged user can reach (pytest's tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(prefix="zooscope-store-") as name:
        os.chmod(name, 0o777)
        yield Path(name)


def test_sqlite_read_only_directory_gives_not_saved(shared_dir):
    folder = shared_dir / "ro"
    folder.mkdir()
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR | stat.S_IROTH | stat.S_IXOTH)
    with unprivileged(), pytest.raises(StoreError) as info:
        Store(folder / "analyses.sqlite3").save("k", {}, {"x": np.zeros(3)})
    assert str(info.value).startswith("Not saved: the analysis store is read-only")
    assert "still on screen" in str(info.value)


def test_sqlite_read_only_file_gives_not_saved(shared_dir):
    path = shared_dir / "analyses.sqlite3"
    owner = Store(path)
    owner.save("k", {}, {})
    owner.close()
    os.chmod(path, 0o444)
    with unprivileged(), pytest.raises(StoreError) as info:
        Store(path).save("k", {}, {"x": np.zeros(3)})
    assert str(info.value).startswith("Not saved: the analysis store is read-only")


def test_sqlite_full_disk_gives_not_saved_and_the_store_recovers(tmp_path):
    store = Store(tmp_path / "analyses.sqlite3")
    kept = store.save("k", {}, {"x": np.zeros(10)})
    conn = store._backend._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match=r"^Not saved: the analysis store is full"):
        store.save("k", {}, {"x": np.zeros(100_000)})  # 800 kB does not fit
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.load(kept) is not None and store.load(store.save("k", {}, {})) is not None
    assert [s.id for s in store.recent(limit=5)][1:] == [kept]  # the failed save left nothing
    assert store.integrity_check() == "ok"
