"""Figures on the page: a chart is built once per result object, and never reused for another."""

from __future__ import annotations

from app.ui.figures import built_once


def test_charts_are_built_once_per_result_object_and_never_for_another():
    class Result:
        pass

    first, calls = Result(), []
    build = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert built_once(first, "k", build) == 1
    assert built_once(first, "k", build) == 1 and len(calls) == 1
    assert built_once(first, "other", build) == 2
    assert built_once(Result(), "k", build) == 3, "an equal key on another object is a new chart"
    assert built_once((first, Result()), "k", build) == 4
