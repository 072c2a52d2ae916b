"""The Dataset page: its link state, what a share keeps, the links to attribution views, and the page itself."""

from __future__ import annotations

import time

import numpy as np

from analyzers.dataset import DatasetParams
from app.features.dataset import DatasetView, attribution_link, from_arrays, to_arrays
from app.runtime.dataset import DatasetJob, heldout_dataset
from tests.app.apptest import errors, numbers, open_page

LABELS = tuple(str(d) for d in range(10))


def test_view_round_trips_and_bad_links_are_reported():
    view, problems = DatasetView.from_query({"model": "capsnet", "limit": "40", "n_steps": "8", "engine": "ray"})
    assert not problems and (view.model, view.limit, view.engine) == ("capsnet", 40, "ray")
    assert view.params_object().n_steps == 8
    again, problems = DatasetView.from_query(view.to_query())
    assert again == view and not problems
    bad, problems = DatasetView.from_query({"model": "vae-2d", "limit": "99999", "n_steps": "0"})
    assert bad.model == "vit-dot" and bad.limit == 100 and len(problems) == 3


def test_attribution_link_opens_the_sample_with_the_runs_settings():
    from app.features.attribution import AttributionView

    url = attribution_link("vit-dot", 417, 3, DatasetParams(n_steps=8))
    query = dict(p.split("=") for p in url.split("?", 1)[1].split("&"))
    view, problems = AttributionView.from_query(query)
    assert not problems and view.input.sample == 417 and dict(view.params)["target"] == "3"
    assert attribution_link("vit-dot", -1, 3, DatasetParams()) is None


def _finished_job(n: int = 8) -> DatasetJob:
    params = DatasetParams(n_steps=4, faithfulness="integrated_gradients", curve_steps=4)
    return DatasetJob("vit-dot", heldout_dataset(n), params, LABELS, workers=1, chunk=4).run()


def test_share_arrays_round_trip_through_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))
    from app.runtime import share

    job = _finished_job()
    ex = job.examples()
    link = share.save_view("dataset", DatasetView().to_query(), title="t", inputs=to_arrays(ex, job.dataset),
                           results={}, models=("vit-dot",))
    back, heldout, extra = from_arrays(share.store().load(link).arrays and share.open_link(link).inputs)
    assert np.array_equal(back.attributions, ex.attributions) and back.methods == ex.methods
    assert heldout.tolist() == job.dataset.heldout[ex.index].tolist() and extra == {}


def test_page_opens_and_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_HOME", str(tmp_path))
    at = open_page("dataset", {"limit": "8", "n_steps": "4", "faithfulness": "integrated_gradients", "workers": "1"})
    assert not at.exception and not errors(at)
    run = next(b for b in at.button if b.label == "Run")
    at = run.click().run()
    deadline = time.monotonic() + 120
    while "Accuracy" not in numbers(at) and time.monotonic() < deadline:
        time.sleep(1)
        at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Accuracy" in numbers(at)
