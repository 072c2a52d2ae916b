"""The analysis store: exact round trips, unguessable ids, concurrency, failures and crashes."""

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

NOBODY = 65534


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(tmp_path / "analyses.sqlite3")
    yield store
    store.close()


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
    link_id = store.save("integrated_gradients", meta, arrays, title="IG on a 7")
    saved = store.load(link_id)
    assert isinstance(saved, SavedAnalysis)
    assert (saved.id, saved.kind, saved.title, saved.meta) == (link_id, "integrated_gradients", "IG on a 7", meta)
    assert list(saved.arrays) == list(arrays)
    for name, want in arrays.items():
        got = saved.arrays[name]
        assert got.dtype == np.asarray(want).dtype and got.shape == np.shape(want), name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert saved.created_at.tzinfo is not None


def test_meta_is_canonical_json(store):
    link_id = store.save("k", {"b": 1, "a": {"z": np.float32(0.5), "y": [1, 2]}}, {})
    with contextlib.closing(sqlite3.connect(store.path)) as raw:
        (text,) = raw.execute("SELECT meta_json FROM analyses WHERE id = ?", (link_id,)).fetchone()
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


# ---------------------------------------------------------------------- ids


def test_ids_match_the_pattern_and_are_unique(store):
    ids = [store.save("k", {}, {}) for _ in range(200)]
    assert all(LINK_ID_PATTERN.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "' OR 1=1 --",
        "'; DROP TABLE analyses; --",
        "../../etc/passwd",
        "A" * 21,
        "A" * 23,
        "A" * 10_000,
        "A" * 21 + "=",
        "A" * 22 + "\n",
        "Ａ" * 22,  # full-width letters
        "٣" * 22,  # Arabic-Indic digits match \d but not [0-9]
        None,
        22,
    ],
)
def test_malformed_ids_find_nothing_and_never_touch_the_database(tmp_path, bad):
    store = Store(tmp_path / "not-created" / "analyses.sqlite3")
    assert not is_valid_link_id(bad)
    assert store.load(bad) is None
    assert not (tmp_path / "not-created").exists()


def test_unknown_well_formed_ids_find_nothing(store):
    store.save("k", {}, {"x": np.zeros(2)})
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + "-_"
    ids = {"".join(rng.choices(alphabet, k=22)) for _ in range(10_000)}
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
    with contextlib.closing(sqlite3.connect(store.path)) as raw, raw:
        raw.execute("UPDATE analyses SET arrays_npz = ? WHERE id = ?", (buffer.getvalue(), link_id))
    with pytest.raises(StoreError, match="damaged"):
        store.load(link_id)


def test_payload_over_the_limit_is_refused(tmp_path):
    store = Store(tmp_path / "a.sqlite3")
    with pytest.raises(StoreError, match=r"^Not saved: .*50 MB"):
        store.save("k", {}, {"big": np.zeros(51 * 2**20 // 8)})  # 51 MB of float64, never written
    small = Store(tmp_path / "b.sqlite3", max_payload_bytes=4096)
    small.save("k", {}, {"x": np.zeros(100)})
    with pytest.raises(StoreError, match="^Not saved"):
        small.save("k", {}, {"x": np.zeros(1000)})


# ----------------------------------------------------------------- sqlite


def test_wal_mode_synchronous_full_and_schema_version(store):
    store.save("k", {}, {})
    conn = store._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert store.integrity_check() == "ok"


def test_store_from_a_newer_zooscope_is_refused(tmp_path):
    path = tmp_path / "a.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer zooscope"):
        Store(path).save("k", {}, {})


def test_default_store_path(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))
    assert default_store_path() == tmp_path / "analyses.sqlite3"
    monkeypatch.delenv("ZOOSCOPE_HOME")
    assert default_store_path() == Path(platformdirs.user_data_dir("zooscope")) / "analyses.sqlite3"


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
    assert len(set(ids)) == 1000
    for link_id in ids:
        saved = store.load(link_id)
        assert saved.arrays["x"][0] == saved.meta["t"] * 100 + saved.meta["i"]
    assert store.integrity_check() == "ok"


def test_locked_store_never_leaks_database_is_locked(tmp_path):
    path = tmp_path / "a.sqlite3"
    Store(path).save("k", {}, {})
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, check_same_thread=False)) as other:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        with pytest.raises(StoreError, match=r"^Not saved: .*busy"):
            Store(path, busy_timeout=0.3).save("k", {}, {})
        threading.Timer(0.3, other.execute, args=("COMMIT",)).start()
        assert Store(path, busy_timeout=5).save("k", {}, {})  # waits for the lock, then saves


# ----------------------------------------------------------------- failures


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


def test_read_only_directory_gives_not_saved(shared_dir):
    folder = shared_dir / "ro"
    folder.mkdir()
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR | stat.S_IROTH | stat.S_IXOTH)
    with unprivileged(), pytest.raises(StoreError) as info:
        Store(folder / "analyses.sqlite3").save("k", {}, {"x": np.zeros(3)})
    assert str(info.value).startswith("Not saved: the analysis store is read-only")
    assert "still on screen" in str(info.value)


def test_read_only_file_gives_not_saved(shared_dir):
    path = shared_dir / "analyses.sqlite3"
    owner = Store(path)
    owner.save("k", {}, {})
    owner.close()
    os.chmod(path, 0o444)
    with unprivileged(), pytest.raises(StoreError) as info:
        Store(path).save("k", {}, {"x": np.zeros(3)})
    assert str(info.value).startswith("Not saved: the analysis store is read-only")


def test_full_disk_gives_not_saved_and_the_store_recovers(store):
    kept = store.save("k", {}, {"x": np.zeros(10)})
    conn = store._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match=r"^Not saved: the analysis store is full"):
        store.save("k", {}, {"x": np.zeros(100_000)})  # 800 kB does not fit
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.load(kept) is not None and store.load(store.save("k", {}, {})) is not None
    assert [s.id for s in store.recent(limit=5)][1:] == [kept]  # the failed save left nothing
    assert store.integrity_check() == "ok"


def test_acknowledged_saves_survive_sigkill(tmp_path):
    result = run_round(tmp_path / "analyses.sqlite3", seconds=1.0, writers=2)
    assert result.acknowledged > 10
    assert result.found == result.intact == result.acknowledged
    assert result.integrity == "ok"
