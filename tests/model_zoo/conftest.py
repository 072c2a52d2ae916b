from __future__ import annotations

import pytest

from model_zoo import REGISTRY, load_spec


def trained_names() -> list[str]:
    """Zoo models trained by the digit recipe (the text classifier's delta has tests of its own)."""
    return [n for n, s in REGISTRY.items() if s.recipe is not None and s.family != "text-classifier"]


@pytest.fixture(scope="session")
def loaded():
    """Zoo models loaded once per test session, on the CPU."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_spec(REGISTRY[name], "cpu")
        return cache[name]

    return get
