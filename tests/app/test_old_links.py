"""Share links saved before app/ was reorganised keep opening, with identical numbers.

``fixtures/store-v1`` is a store written by the code of 2026-12-06 (before the move into rooms):
a few saved analyses of every page that shares, made by clicking Share on each page. Its
manifest records, for every link, what the reopened page showed then: the metrics, the settings
summary, and a digest of every saved result's arrays.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.app.apptest import numbers, open_page, settings_summary

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store-v1"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture
def old_store(zooscope_home):
    shutil.copy(FIXTURE / "analyses.sqlite3", zooscope_home / "analyses.sqlite3")
    return zooscope_home


def _digest(result) -> str:
    from analyzers import to_record

    _, arrays = to_record(result)
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = arrays[k]
        for part in (k.encode(), str(a.dtype).encode(), str(a.shape).encode(), a.tobytes()):
            h.update(part)
    return h.hexdigest()


@pytest.mark.parametrize("row", MANIFEST, ids=[f"{r['page']}-{r['link'][:6]}" for r in MANIFEST])
def test_an_old_link_reopens_its_results_exactly(old_store, row):
    from app.runtime import share

    saved = share.open_link(row["link"])
    assert saved.page == row["page"] and saved.title == row["title"]
    assert row["query"].items() <= saved.view.items()
    assert {name: _digest(r) for name, r in sorted(saved.results.items())} == row["results"]


@pytest.mark.parametrize("row", MANIFEST, ids=[f"{r['page']}-{r['link'][:6]}" for r in MANIFEST])
def test_an_old_link_opens_its_page_as_it_did(old_store, row, monkeypatch):
    from app.runtime import compute

    def refuse(*args, **kwargs):
        raise AssertionError("a saved analysis is shown from the store, not recomputed")

    monkeypatch.setattr(compute, "run", refuse)
    at = open_page(row["page"], {"id": row["link"]})
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert numbers(at) == row["metrics"]
    assert settings_summary(at) == row["settings"]
    assert at.query_params == {"id": row["link"]}
