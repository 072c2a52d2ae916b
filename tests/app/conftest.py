from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def zooscope_home(tmp_path, monkeypatch):
    """Every app test gets its own empty analysis store and projection cache."""
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(autouse=True)
def nothing_ahead(monkeypatch):
    """In-process tests compute only what they ask for (tests/app/test_ahead.py turns it back on)."""
    monkeypatch.setenv("ZOOSCOPE_AHEAD", "0")
