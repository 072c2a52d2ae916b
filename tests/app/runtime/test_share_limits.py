"""Share floods: the store's size budget and the per-session rate limit refuse, and never delete."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from app.runtime import share
from app.runtime.payload import meta_to_json, pack_arrays
from app.runtime.share import ShareRateLimit, SharingTooFast
from app.runtime.store import Store, StoreError, _megabytes

FULL = r"^Not saved: this server's store of shared analyses is full \(.* MB\)\. Already shared analyses are kept"


def payload(i: int) -> tuple[dict, dict[str, np.ndarray]]:
    """One analysis of a fixed size whatever ``i`` is: 4 kB of random float32 and a little metadata."""
    rng = np.random.default_rng(i)
    return {"i": f"{i:04d}", "note": "héllo"}, {"x": rng.standard_normal(1024).astype(np.float32)}  # (1024,)


def row_bytes(i: int = 0, title: str = "t") -> int:
    """What one ``payload(i)`` takes in the store: its .npz, its JSON metadata and its title, in bytes."""
    meta, arrays = payload(i)
    return len(pack_arrays(arrays)) + len(meta_to_json(meta).encode()) + len(title.encode())


# ------------------------------------------------------------------------------------ the store's budget


def test_a_save_past_the_budget_is_refused_and_nothing_already_saved_is_deleted(tmp_path):
    store = Store(tmp_path / "a.sqlite3", max_store_bytes=2 * row_bytes())
    ids = [store.save("k", *payload(i), title="t") for i in range(2)]  # exactly at the budget: allowed
    with pytest.raises(StoreError, match=FULL):
        store.save("k", *payload(2), title="t")
    with pytest.raises(StoreError, match="ask the operator to raise ZOOSCOPE_STORE_MAX_MB"):
        store.save("k", {}, {"x": np.zeros(1)})  # even a tiny one: the budget is spent
    assert [s.id for s in store.recent(10)] == ids[::-1]
    for i, link in enumerate(ids):
        saved = store.load(link)
        assert saved.meta == payload(i)[0] and np.array_equal(saved.arrays["x"], payload(i)[1]["x"])
    assert store.integrity_check() == "ok"


def test_a_budget_below_what_is_stored_refuses_new_saves_and_keeps_the_old_ones(tmp_path):
    path = tmp_path / "a.sqlite3"
    ids = [Store(path).save("k", *payload(i), title="t") for i in range(3)]  # no budget when they were saved
    lowered = Store(path, max_store_bytes=row_bytes())
    with pytest.raises(StoreError, match=FULL):
        lowered.save("k", *payload(3), title="t")
    assert all(lowered.load(link) is not None for link in ids)
    assert len(lowered.recent(10)) == 3


@pytest.mark.parametrize("budget", [None, 0])
def test_no_budget_keeps_saving(tmp_path, budget):
    store = Store(tmp_path / "a.sqlite3", max_store_bytes=budget)
    assert store.max_store_bytes is None
    assert len({store.save("k", *payload(i)) for i in range(5)}) == 5


def test_two_writers_at_once_cannot_take_the_store_past_its_budget(tmp_path):
    """Two server processes (two Store objects, one file) race for the last room: the budget holds exactly."""
    path, budget_rows, tries = tmp_path / "a.sqlite3", 5, 8
    start = threading.Barrier(2)
    saved: list[str] = []
    refused: list[str] = []
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        store = Store(path, max_store_bytes=budget_rows * row_bytes())
        start.wait()
        try:
            for i in range(tries):
                try:
                    saved.append(store.save("k", *payload(offset + i), title="t"))
                except StoreError as e:
                    refused.append(str(e))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(saved) == budget_rows and len(refused) == 2 * tries - budget_rows
    assert all("store of shared analyses is full" in message for message in refused), refused
    store = Store(path)
    assert len(store.recent(100)) == budget_rows and all(store.load(link) for link in saved)


@pytest.mark.parametrize("n_bytes, text", [(1024 * 2**20, "1,024"), (int(2.5 * 2**20), "2.5"), (10 * 2**10, "0.01")])
def test_the_budget_reads_in_megabytes(n_bytes, text):
    assert _megabytes(n_bytes) == text


# ------------------------------------------------------------------------------- settings from the environment


def test_the_store_of_shares_carries_the_budget_of_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))
    monkeypatch.delenv(share.STORE_BUDGET_ENV, raising=False)
    assert share.store().max_store_bytes == 1024 * 2**20
    monkeypatch.setenv(share.STORE_BUDGET_ENV, "0.01")
    tiny = share.store()
    assert tiny.max_store_bytes == int(0.01 * 2**20) and tiny.path.parent == tmp_path
    tiny.save("k", {}, {"x": np.zeros(1000)})  # 8 kB of 10
    with pytest.raises(StoreError, match=FULL):
        tiny.save("k", {}, {"x": np.zeros(1000)})
    monkeypatch.setenv(share.STORE_BUDGET_ENV, "0")
    assert share.store().max_store_bytes is None


@pytest.mark.parametrize("raw, expected", [("", 30), ("5", 5), ("0", None), ("2.9", 2)])
def test_shares_per_hour_from_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv(share.SHARES_PER_HOUR_ENV, raw)
    assert share.shares_per_hour() == expected


@pytest.mark.parametrize("name, read, default", [
    (share.SHARES_PER_HOUR_ENV, share.shares_per_hour, 30),
    (share.STORE_BUDGET_ENV, share.store_budget_bytes, 1024 * 2**20),
])
@pytest.mark.parametrize("raw", ["lots", "-1", "nan", "inf"])
def test_a_bad_setting_warns_and_uses_the_default(monkeypatch, caplog, name, read, default, raw):
    monkeypatch.setenv(name, raw)
    with caplog.at_level(logging.WARNING):
        assert read() == default
    assert name in caplog.text


# --------------------------------------------------------------------------------- the rate limit


class Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_may_share_up_to_the_limit_then_is_told_when_it_may_again():
    clock = Clock()
    limit = ShareRateLimit(clock)
    for _ in range(3):
        limit.check(3)
        limit.record()
    with pytest.raises(SharingTooFast, match=r"^Not saved: this session has shared 3 analyses in the last hour.*"
                                             r"still on screen; you can share it in 60 minutes\.$"):
        limit.check(3)
    clock.now += 3599.5
    with pytest.raises(SharingTooFast, match=r"in 1 second\.$"):
        limit.check(3)
    clock.now += 0.5
    limit.check(3)  # an hour after the first, a share is allowed again


def test_the_window_slides_one_share_at_a_time():
    clock = Clock()
    limit = ShareRateLimit(clock)
    for _ in range(3):
        limit.record()
        clock.now += 1000
    assert limit.wait_s(3) == 600  # at t0 + 3000; the first share leaves the window at t0 + 3600
    clock.now += 600
    assert limit.wait_s(3) == 0
    limit.record()
    clock.now += 1
    assert limit.wait_s(3) == 999  # now the second (t0 + 1000) must leave
    with pytest.raises(SharingTooFast, match="in 17 minutes"):
        limit.check(3)


def test_only_recorded_shares_count_and_no_limit_never_refuses():
    limit = ShareRateLimit(Clock())
    for _ in range(10):
        limit.check(1)  # asking is not sharing
    limit.record()
    with pytest.raises(SharingTooFast, match="shared 1 analysis in the last hour"):
        limit.check(1)
    for _ in range(100):
        limit.record()
    assert limit.wait_s(None) == 0 and limit.wait_s(0) == 0


def test_a_lowered_limit_counts_the_shares_already_made():
    clock = Clock()
    limit = ShareRateLimit(clock)
    for _ in range(5):
        limit.record()
        clock.now += 60
    assert limit.wait_s(10) == 0
    assert limit.wait_s(2) == 3600 - 2 * 60  # the 4th share (t0 + 180) must leave the window, at t0 + 3780
