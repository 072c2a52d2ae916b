"""Smoke tests of the benchmark harness: numbers, results file, run tracking, RSS, a server's life.

No browser here: the browser paths are exercised by running ``bench/app.py`` and ``bench/load.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from bench import _harness as h
from bench.app import Row, table


def test_median_and_percentiles():
    assert h.median([3.0, 1.0, 2.0]) == 2.0
    assert h.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert h.percentile([0.0, 10.0], 95) == pytest.approx(9.5)
    assert h.percentile([], 50) != h.percentile([], 50)  # NaN


def test_write_section_appends_then_replaces(tmp_path):
    path = tmp_path / "RESULTS.md"
    h.write_section("app", "<!-- bench:app:start -->\nfirst\n<!-- bench:app:end -->\n", path)
    h.write_section("load", "<!-- bench:load:start -->\nload\n<!-- bench:load:end -->\n", path)
    h.write_section("app", "<!-- bench:app:start -->\nsecond\n<!-- bench:app:end -->\n", path)
    text = path.read_text()
    assert "second" in text and "first" not in text and text.count("bench:app:start") == 1
    assert text.index("second") < text.index("bench:load:start")  # replaced in place


def test_section_names_machine_command_and_date():
    text = h.section("app", "App", "| a |", ["python", "-m", "bench.app", "--repeat", "1"])
    assert "python -m bench.app --repeat 1" in text and "machine:" in text and "date:" in text
    assert "device:" in text


def test_rss_counts_the_process_tree():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        own = h.rss_bytes(os.getpid())
        assert own > 0
        assert child.pid in h._process_tree(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert h.rss_bytes(child.pid) == 0  # gone


def _frames(*kinds: str) -> h.RunTracker:
    tracker = h.RunTracker()
    for i, spec in enumerate(kinds, start=1):
        kind, _, detail = spec.partition(":")
        tracker.frames.append(h.Frame(float(i), i, kind, detail, doc_index=i))
    return tracker


def test_tracker_finds_the_element_of_the_next_run_only():
    tracker = _frames("run_start", "element:vega_lite_chart", "finished:FINISHED_SUCCESSFULLY",
                      "run_start", "element:metric", "element:vega_lite_chart", "element:vega_lite_chart",
                      "finished:FINISHED_SUCCESSFULLY")
    assert tracker._search(0, "element", "vega_lite_chart", 0).index == 2
    assert tracker._search(3, "element", "vega_lite_chart", 0).index == 6
    assert tracker._search(3, "element", "vega_lite_chart", 1).index == 7
    assert tracker._search(3, "finished", None, 0).index == 8
    assert tracker._search(8, "finished", None, 0) is None


def test_tracker_skips_runs_that_ended_early_and_old_documents():
    tracker = _frames("run_start", "finished:FINISHED_EARLY_FOR_RERUN", "run_start", "element:vega_lite_chart",
                      "finished:FINISHED_SUCCESSFULLY")
    assert tracker._search(0, "finished", None, 0).index == 5
    tracker.frames[3].doc_index = 0  # a message to a document the page has left
    assert tracker._search(0, "element", "vega_lite_chart", 0) is None


def test_table_reports_ratio_target_and_verdict():
    rows = [Row("fast", [0.2, 0.1, 0.3], "floor", [0.1], target=0.3),
            Row("slow", [2.0], "floor", [0.5], target=1.0), Row("missing", note="n/a (page missing)")]
    text = table(rows)
    assert "| fast | 0.200 s | 3 | floor | 0.100 s | 2.0× | ≤ 0.300 s | pass |" in text
    assert "4.0× | ≤ 1.000 s | FAIL" in text and "n/a (page missing)" in text


def test_a_streamlit_server_starts_answers_and_stops(tmp_path):
    script = h.write_empty_app(tmp_path)
    server = h.Server(lambda port: h.streamlit_command(script, port), home=tmp_path).start()
    try:
        started = asyncio.run(server.wait_healthy(90))
        assert started > 0 and server.rss() > 0
    finally:
        server.stop()
    assert server.proc.poll() is not None


def test_notes_stay_in_one_table_cell():
    row = Row("x")
    row.say("error: first line\nsecond | line")
    row.say("health 1.2 s", first=True)
    assert row.note == "health 1.2 s; error: first line second \\| line"
