from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def zooscope_home(tmp_path, monkeypatch):
    """Every app test gets its own empty analysis store and projection cache."""
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))
    return tmp_path
