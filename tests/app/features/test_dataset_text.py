"""The Dataset page on a text classifier: the held-out sentences run, shares keep words, the panels draw."""

from __future__ import annotations

import time

import numpy as np

from analyzers.dataset import DatasetParams, summarise
from app.charts.dataset import class_words_chart
from app.features import dataset_text
from app.features.dataset import DatasetView, Upload, dataset_for, from_arrays, to_arrays
from app.runtime.dataset import DatasetJob, heldout_texts
from tests.app.apptest import errors, numbers, open_page

LABELS = ("negative", "positive")


def _job(n: int = 4) -> DatasetJob:
    return DatasetJob("minilm-sentiment", heldout_texts(LABELS, n), DatasetParams(n_steps=4), LABELS, workers=1,
                      chunk=2).run()


def test_text_run_shares_words_and_draws_top_words(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))
    from app.runtime import share

    job = _job()
    assert job.progress().state == "done", job.progress().error
    ex = job.examples()
    link = share.save_view("dataset", DatasetView(model="minilm-sentiment").to_query(), title="t",
                           inputs=to_arrays(ex, job.dataset), results={}, models=("minilm-sentiment",))
    back, heldout, _ = from_arrays(share.open_link(link).inputs)
    assert [tuple(w) for w in back.words] == [tuple(w) for w in ex.words]
    assert all(np.allclose(a, b) for a, b in zip(back.attributions, ex.attributions))
    assert heldout.tolist() == job.dataset.heldout.tolist()
    s = summarise(back, LABELS)
    spec = class_words_chart(s.extra["class_words"], LABELS).to_dict()
    assert len(spec["hconcat"]) == len({int(t) for t in back.target})
    top = dataset_text.top_words(("good", "bad", "film"), np.array([0.5, -0.2, 0.1]), 2)
    assert top == "good (+0.50), film (+0.10)"


def test_upload_is_read_for_the_model_and_bad_labels_are_one_message():
    view = DatasetView(model="minilm-sentiment", dataset="upload", limit=2)
    data = dataset_for(view, Upload("r.jsonl", b'{"text": "great", "label": "positive", "src": "a"}\n'
                                                b'{"text": "awful", "label": "negative", "src": "b"}\n'
                                                b'{"text": "fine", "label": "", "src": "b"}\n'), LABELS)
    assert data.texts == ("great", "awful") and data.labels.tolist() == [1, 0] and data.extra["src"] == ("a", "b")


def test_page_runs_on_the_held_out_sentences(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))
    at = open_page("dataset", {"model": "minilm-sentiment", "limit": "4", "n_steps": "4", "workers": "1"})
    assert not at.exception and not errors(at)
    at = next(b for b in at.button if b.label == "Run").click().run()
    deadline = time.monotonic() + 120
    while "Accuracy" not in numbers(at) and time.monotonic() < deadline:
        time.sleep(1)
        at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Accuracy" in numbers(at) and not errors(at)
    text = " ".join(c.value for c in at.caption)
    assert "Deletion/insertion curves are measured for image classifiers only" in text
    assert any("Top words" in c.value for c in at.caption)
