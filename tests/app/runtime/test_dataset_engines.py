"""Whole-dataset jobs: the local pool and Ray give byte-identical summaries; datasets are read safely."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from analyzers.dataset import DatasetParams, summary_json
from app.runtime.dataset import DatasetJob, dataset_from_bytes, heldout_dataset, load_dataset, named_datasets
from app.runtime.engines import EngineError, make_engine
from app.runtime.inputs import InputError

LABELS = tuple(str(d) for d in range(10))
PARAMS = DatasetParams(n_steps=4, faithfulness="integrated_gradients", curve_steps=4)


def _summary(engine: str, data) -> str:
    job = DatasetJob("vit-dot", data, PARAMS, LABELS, engine=engine, workers=2, chunk=4).run()
    p = job.progress()
    assert p.state == "done", p.error
    assert p.done == len(data)
    return json.dumps(summary_json(job.summary()), indent=2)


@pytest.fixture
def ray_loopback():
    import os

    from app.runtime.engines import LOOPBACK_ENV

    os.environ.setdefault(LOOPBACK_ENV, "0")  # as the engine sets it, before ray is first imported
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    try:
        yield ray
    finally:
        if ray.is_initialized():
            ray.shutdown()


def test_local_and_ray_give_byte_identical_json(ray_loopback):
    data = heldout_dataset(12)
    assert len(set(data.labels.tolist())) >= 7  # the shuffled order covers the classes
    local = _summary("local", data)
    engine = make_engine("ray", "vit-dot", 2)
    try:  # Ray on loopback, in process
        nodes = ray_loopback.nodes()
        assert nodes and all(n["NodeManagerAddress"] == "127.0.0.1" for n in nodes)
        assert engine.describe() == "Ray, 2 actors"
    finally:
        engine.close()
    assert not ray_loopback.is_initialized()  # the engine shut down the Ray it started
    ray = _summary("ray", data)
    assert local == ray
    assert not ray_loopback.is_initialized()
    out = json.loads(local)
    assert out["examples"] == 12 and 0.8 <= out["accuracy"] <= 1.0


def test_a_cancelled_job_keeps_its_partial_results():
    data = heldout_dataset(24)
    job = DatasetJob("vit-dot", data, PARAMS, LABELS, engine="local", workers=1, chunk=4).start()
    import time

    deadline = time.monotonic() + 120
    while job.progress().done == 0 and job.progress().state == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    job.cancel()
    job.join(120)
    p = job.progress()
    assert p.state == "cancelled" and 0 < p.done < 24
    assert job.summary().n == p.done


def test_engine_errors_are_messages():
    with pytest.raises(EngineError, match="unknown engine"):
        make_engine("spark", "vit-dot")
    with pytest.raises(EngineError, match="workers"):
        make_engine("local", "vit-dot", 0)
    job = DatasetJob("no-such-model", heldout_dataset(2), PARAMS, LABELS, workers=1).run()
    assert job.progress().state == "failed" and "no-such-model" in job.progress().error


def _png(value: int = 255) -> bytes:
    img = np.zeros((40, 40), np.uint8)
    img[8:32, 16:24] = value
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def _zip(files: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_with_labels_csv_and_extra_columns():
    data = _zip({"a.png": _png(), "b.png": _png(200), "labels.csv": b"file,label,pen\na.png,1,blue\nb.png,7,red\n"})
    ds = dataset_from_bytes("mine.zip", data, LABELS)
    assert ds.labels.tolist() == [1, 7] and ds.extra == {"pen": ("blue", "red")}
    assert ds.images.shape == (2, 1, 28, 28) and ds.images.max() <= 1
    assert (ds.heldout == -1).all()


def test_folder_labels_by_parent(tmp_path):
    for label in ("3", "5"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "x.png").write_bytes(_png())
    ds = load_dataset(str(tmp_path), LABELS)
    assert ds.labels.tolist() == [3, 5]


def test_zip_bomb_and_bad_files_are_refused():
    bomb = _zip({"big.png": b"\0" * (20 * 2**20)})
    with pytest.raises(InputError, match="zip bomb"):
        dataset_from_bytes("bomb.zip", bomb, LABELS)
    with pytest.raises(InputError, match="not a readable zip"):
        dataset_from_bytes("cut.zip", bomb[:200], LABELS)
    with pytest.raises(InputError, match="labels.csv line 2"):
        dataset_from_bytes("x.zip", _zip({"a.png": _png(), "labels.csv": b"file,label\na.png,cat\n"}), LABELS)
    with pytest.raises(InputError, match="no text classifier"):
        dataset_from_bytes("t.csv", b"text,label\nhello,pos\n", LABELS)
    with pytest.raises(InputError, match="needs a text field"):
        dataset_from_bytes("t.jsonl", b'{"txt": 1}\n', LABELS)
    with pytest.raises(InputError, match="no dataset"):
        load_dataset("/no/such/folder", LABELS)


def test_named_datasets_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOOSCOPE_DATASETS", f"mine={tmp_path}, {tmp_path / 'other.zip'}")
    assert named_datasets() == {"mine": str(tmp_path), "other": str(tmp_path / "other.zip")}
