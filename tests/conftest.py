"""Shared fixtures: tiny CPU settings and an isolated zooscope home for every test session."""

from __future__ import annotations

import os

import pytest
import torch

# One intra-op thread: the models are tiny, and on a small shared machine several threads fight
# over the cores (measured here: the analyzer suite ran about 6x faster with one).
torch.set_num_threads(1)
os.environ.setdefault("ZOOSCOPE_DEVICE", "cpu")


@pytest.fixture(autouse=True, scope="session")
def _zooscope_home(tmp_path_factory):
    """Keep the store and caches of the test run out of the user's real data directory."""
    home = tmp_path_factory.mktemp("zooscope-home")
    old = os.environ.get("ZOOSCOPE_HOME")
    os.environ["ZOOSCOPE_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("ZOOSCOPE_HOME", None)
    else:
        os.environ["ZOOSCOPE_HOME"] = old
