"""Whole-dataset jobs: read a dataset, cut it into chunks, run them on an engine, gather a summary.

Datasets:

- ``heldout``: the held-out split, in a fixed shuffled order (seed 0) so that ``limit`` examples
  cover every class; each example keeps its held-out index (links open it on the Attribution page);
- a folder or a ``.zip`` of images: labels from each image's parent folder (``3/a.png``) or from a
  ``labels.csv`` (``file,label[,more columns]``: the extra columns become slices);
- a ``.csv`` / ``.jsonl`` of texts (columns ``text`` and ``label``, labels the model's label names;
  more columns become slices), for text classifiers; ``heldout`` for a text classifier means the
  held-out sentences of ``model_zoo.sentiment`` (minilm-sentiment's labels).

Paths are named at serve time (``ZOOSCOPE_DATASETS=name=/path,...`` or ``zooscope serve --dataset
PATH``); visitors may upload a zip or CSV within the upload limits. Nothing from a dataset is
unpickled or imported; images go through :func:`app.runtime.images.decode_image` (Pillow's bomb
limits), zips are checked entry by entry before anything is decompressed.

A :class:`DatasetJob` runs in a background thread: progress with ETA, cancel, and the chunks done
so far (partial results) readable at any time. No streamlit here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
import zipfile
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analyzers.dataset import ChunkResult, DatasetParams, gather, summarise
from app.runtime.images import MAX_UPLOAD_BYTES, decode_image
from app.runtime.inputs import InputError

DATASETS_ENV = "ZOOSCOPE_DATASETS"
MAX_EXAMPLES = 5000  # examples in one dataset
MAX_ZIP_BYTES = 50 * 1024 * 1024  # a zip's entries together, uncompressed
MAX_ZIP_RATIO = 100  # uncompressed / compressed per entry: more is a zip bomb
MAX_TEXT_BYTES = MAX_UPLOAD_BYTES
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
DEFAULT_CHUNK = 8
HELDOUT = "heldout"


@dataclass(frozen=True)
class Dataset:
    """Examples to analyse: images (N, 1, 28, 28) in [0, 1], labels (-1: none), names, held-out indices."""

    name: str
    images: np.ndarray
    labels: np.ndarray  # (N,) int64
    names: tuple[str, ...]
    heldout: np.ndarray  # (N,) int64: index in the held-out split, -1 for other datasets
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)  # column -> value per example
    texts: tuple[str, ...] = ()  # text datasets: the texts (images is then empty)

    @property
    def is_text(self) -> bool:
        return bool(self.texts)

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, limit: int | None) -> Dataset:
        if not limit or limit >= len(self):
            return self
        return Dataset(self.name, self.images[:limit], self.labels[:limit], self.names[:limit],
                       self.heldout[:limit], {k: v[:limit] for k, v in self.extra.items()}, self.texts[:limit])


def heldout_dataset(limit: int | None = None) -> Dataset:
    """The held-out split in a fixed shuffled order (seed 0), the first ``limit`` examples."""
    from model_zoo import load_split

    split = load_split()
    order = np.random.default_rng(0).permutation(len(split.y_heldout))[:limit]
    images = split.x_heldout[order].astype(np.float32)[:, None] / 255.0
    return Dataset(HELDOUT, images, split.y_heldout[order].astype(np.int64),
                   tuple(f"sample:{i}" for i in order.tolist()), order.astype(np.int64))


def heldout_texts(labels: tuple[str, ...], limit: int | None = None) -> Dataset:
    """The held-out sentences of minilm-sentiment in a fixed shuffled order (seed 0), the first ``limit``."""
    from model_zoo.sentiment import load_sentiment_split

    if tuple(labels) != ("negative", "positive"):
        raise InputError("the held-out sentences are labelled negative/positive; this model's labels are "
                         f"{', '.join(labels)}: upload a CSV/JSONL of texts with its labels instead")
    sentences, ys = load_sentiment_split().part("heldout")
    order = np.random.default_rng(0).permutation(len(ys))[:limit]
    return _text_dataset(HELDOUT, [sentences[i] for i in order], np.asarray(ys)[order], order.astype(np.int64))


def _text_dataset(name: str, sentences: list[str], ys: np.ndarray, heldout: np.ndarray | None = None,
                  extra: dict[str, tuple[str, ...]] | None = None) -> Dataset:
    n = len(sentences)
    return Dataset(name, np.zeros((n, 0), dtype=np.float32), np.asarray(ys, dtype=np.int64),
                   tuple(f"text:{i}" for i in range(n)) if heldout is None else tuple(f"sentence:{i}" for i in heldout),
                   np.full(n, -1, dtype=np.int64) if heldout is None else heldout, extra or {}, tuple(sentences))


def text_dataset(name: str, data: bytes, labels: tuple[str, ...], limit: int | None = None) -> Dataset:
    """A CSV/JSONL of texts for a text classifier: labels must be the model's label names (or empty)."""
    sentences, raw, extra = _text_rows(name, data)
    if len(sentences) > MAX_EXAMPLES:
        raise InputError(f"{name} holds {len(sentences):,} texts; at most {MAX_EXAMPLES:,} are allowed")
    ys = []
    for n, (text, lab) in enumerate(zip(sentences, raw), 1):
        lab = lab.strip()
        if lab and lab not in labels:
            raise InputError(f"{name} row {n}: label {lab!r} is not one of the model's labels "
                             f"({', '.join(labels)}); use those names, or leave the label empty")
        if not text.strip():
            raise InputError(f"{name} row {n}: the text is empty; remove the row or fill it in")
        ys.append(labels.index(lab) if lab else -1)
    limit = limit or len(sentences)
    return _text_dataset(Path(name).stem, sentences[:limit], np.asarray(ys[:limit], dtype=np.int64),
                         extra={c: v[:limit] for c, v in extra.items()})


def named_datasets() -> dict[str, str]:
    """Datasets the server was started with: ``ZOOSCOPE_DATASETS`` as ``name=path`` or bare paths, comma-separated."""
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in os.environ.get(DATASETS_ENV, "").split(","))):
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        out[name.strip() or Path(path).stem] = path.strip()
    return out


def load_dataset(source: str, labels: tuple[str, ...], limit: int | None = None, *, text: bool = False) -> Dataset:
    """``heldout``, a named dataset, or a path (folder, .zip, .csv, .jsonl); ``limit`` examples at most.

    ``text``: the model is a text classifier (heldout: the held-out sentences; files: CSV/JSONL of texts)."""
    if source == HELDOUT:
        return heldout_texts(labels, limit) if text else heldout_dataset(limit)
    path = Path(named_datasets().get(source, source)).expanduser()
    if not path.exists():
        known = ", ".join([HELDOUT, *named_datasets()])
        raise InputError(f"no dataset {source!r}: not a file or folder, nor one of {known}")
    if path.is_dir():
        if text:
            raise InputError(f"{path.name} is a folder; a text classifier reads a .csv or .jsonl of texts")
        files = {str(p.relative_to(path)): p.read_bytes for p in sorted(path.rglob("*")) if p.is_file()}
        return _from_files(path.name, files, labels, limit)
    data = path.read_bytes() if path.stat().st_size <= MAX_ZIP_BYTES else b""
    if not data:
        raise InputError(f"{path.name} is {path.stat().st_size / 2**20:.0f} MB; a dataset file may hold at most "
                         f"{MAX_ZIP_BYTES / 2**20:.0f} MB")
    return dataset_from_bytes(path.name, data, labels, limit, text=text)


def dataset_from_bytes(name: str, data: bytes, labels: tuple[str, ...], limit: int | None = None, *,
                       text: bool = False) -> Dataset:
    """A dataset from a file's bytes (an upload): a zip of images, or a CSV/JSONL of texts."""
    if text:
        if not name.lower().endswith((".csv", ".jsonl")):
            raise InputError(f"{name} is not a CSV or JSONL file; a text classifier reads texts: upload a .csv "
                             "or .jsonl with the columns text and label")
        return text_dataset(name, data, labels, limit)
    if data[:4] == b"PK\x03\x04":
        return _from_zip(name, data, labels, limit)
    if name.lower().endswith((".csv", ".jsonl")):
        texts(name, data, labels)  # checked, then refused: texts need a text classifier
        raise InputError(f"{name} holds texts, and this model is an image classifier, no text classifier: choose "
                         "minilm-sentiment (or another text classifier) for texts, or use a zip or folder of images.")
    raise InputError(f"{name} is not a zip of images, a CSV or a JSONL file; upload a .zip of PNG/JPEG digits "
                     "(in folders named by their label, or with a labels.csv)")


def _from_zip(name: str, data: bytes, labels: tuple[str, ...], limit: int | None) -> Dataset:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [e for e in archive.infolist() if not e.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise InputError(f"{name} is not a readable zip file ({e}); zip the images again") from None
    if len(entries) > MAX_EXAMPLES + 1:
        raise InputError(f"{name} holds {len(entries):,} files; a dataset may hold at most {MAX_EXAMPLES:,} images")
    total = sum(e.file_size for e in entries)
    if total > MAX_ZIP_BYTES:
        raise InputError(f"{name} unpacks to {total / 2**20:.0f} MB; at most {MAX_ZIP_BYTES / 2**20:.0f} MB is "
                         "allowed (refused before unpacking)")
    for e in entries:
        if e.file_size > MAX_UPLOAD_BYTES or e.file_size > MAX_ZIP_RATIO * max(e.compress_size, 1):
            raise InputError(f"{name}: {e.filename} would unpack to {e.file_size / 2**20:.1f} MB from "
                             f"{e.compress_size:,} bytes, which looks like a zip bomb; refused before unpacking")

    def reader(entry: zipfile.ZipInfo):
        return lambda: archive.read(entry)

    return _from_files(Path(name).stem, {e.filename: reader(e) for e in entries}, labels, limit)


def _from_files(name: str, files: dict[str, Any], labels: tuple[str, ...], limit: int | None) -> Dataset:
    """Images in ``files`` (relative path -> a function reading the bytes), labelled by folder or labels.csv."""
    table = {k: v for k, v in files.items() if Path(k).name.lower() == "labels.csv"}
    rows = _label_rows(next(iter(table.values()))(), labels) if table else {}
    images = sorted(k for k in files if k.lower().endswith(IMAGE_SUFFIXES) and not Path(k).name.startswith("."))
    if not images:
        raise InputError(f"{name} holds no images (.png, .jpg, .webp, .bmp, .gif); put digit images in folders "
                         "named by their label, or add a labels.csv")
    if len(images) > MAX_EXAMPLES:
        raise InputError(f"{name} holds {len(images):,} images; at most {MAX_EXAMPLES:,} are allowed")
    images = images[:limit] if limit else images
    pixels, ys, extra = [], [], {c: [] for c in (next(iter(rows.values()))[1] if rows else {})}
    for rel in images:
        try:
            pixels.append(decode_image(files[rel]()).pixels)
        except InputError as e:
            raise InputError(f"{name}: {rel}: {e}") from None
        label, more = rows.get(Path(rel).name, rows.get(rel, (_folder_label(rel, labels), {})))
        ys.append(label)
        for c in extra:
            extra[c].append(str(more.get(c, "")))
    return Dataset(name, np.stack(pixels)[:, None].astype(np.float32), np.asarray(ys, dtype=np.int64),
                   tuple(images), np.full(len(images), -1, dtype=np.int64), {c: tuple(v) for c, v in extra.items()})


def _folder_label(rel: str, labels: tuple[str, ...]) -> int:
    parent = Path(rel).parent.name
    return labels.index(parent) if parent in labels else -1


def _label_rows(data: bytes, labels: tuple[str, ...]) -> dict[str, tuple[int, dict[str, str]]]:
    """labels.csv: file -> (label index, extra columns)."""
    reader = csv.DictReader(io.StringIO(_text(data, "labels.csv")))
    if not reader.fieldnames or "file" not in reader.fieldnames or "label" not in reader.fieldnames:
        raise InputError("labels.csv needs a header with the columns file and label (and any others to slice by)")
    out = {}
    for n, row in enumerate(reader, 2):
        lab = (row.get("label") or "").strip()
        if lab and lab not in labels:
            raise InputError(f"labels.csv line {n}: label {lab!r} is not one of {', '.join(labels)}")
        out[row["file"].strip()] = (labels.index(lab) if lab else -1,
                                    {k: v for k, v in row.items() if k not in ("file", "label") and k})
    return out


def _text(data: bytes, name: str) -> str:
    if len(data) > MAX_TEXT_BYTES:
        raise InputError(f"{name} is {len(data) / 2**20:.1f} MB; the limit is {MAX_TEXT_BYTES / 2**20:g} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text; save it as UTF-8") from None


def texts(name: str, data: bytes, labels: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """A CSV or JSONL of texts: (texts, labels), checked (columns ``text`` and ``label``)."""
    sentences, ys, _ = _text_rows(name, data)
    return sentences, ys


def _text_rows(name: str, data: bytes) -> tuple[list[str], list[str], dict[str, tuple[str, ...]]]:
    """(texts, labels, extra columns) of a CSV or JSONL file, checked."""
    raw = _text(data, name)
    if name.lower().endswith(".jsonl"):
        rows = []
        for n, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"{name} line {n} is not JSON ({e.msg}); write one object per line") from None
    else:
        rows = list(csv.DictReader(io.StringIO(raw)))
    if not rows or not all(isinstance(r, dict) and isinstance(r.get("text"), str) for r in rows):
        raise InputError(f"{name} needs a text field in every row (and a label to measure accuracy)")
    columns = [c for c in rows[0] if c not in ("text", "label") and c]
    extra = {c: tuple("" if r.get(c) is None else str(r.get(c)) for r in rows) for c in columns}
    return [r["text"] for r in rows], ["" if r.get("label") is None else str(r.get("label")) for r in rows], extra


# --------------------------------------------------------------------------- the job


@dataclass
class Progress:
    done: int
    total: int
    elapsed_s: float
    eta_s: float | None
    state: str  # running | done | cancelled | failed
    error: str = ""


class DatasetJob:
    """One whole-dataset analysis on an engine, in a background thread: progress, cancel, partial results."""

    def __init__(self, model: str, dataset: Dataset, params: DatasetParams, labels: tuple[str, ...], *,
                 engine: str = "local", workers: int = 2, chunk: int = DEFAULT_CHUNK) -> None:
        self.model, self.dataset, self.params, self.labels = model, dataset, params, labels
        self.engine_name, self.workers, self.chunk = engine, workers, max(1, int(chunk))
        self._chunks: list[ChunkResult] = []
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._state, self._error = "running", ""
        self._start = time.monotonic()
        self._end: float | None = None
        self.engine_description = ""
        self._thread: threading.Thread | None = None

    def start(self) -> DatasetJob:
        self._thread = threading.Thread(target=self.run, name=f"dataset-{self.model}", daemon=True)
        self._thread.start()
        return self

    def run(self) -> DatasetJob:
        """Run every chunk (blocking) and return self; errors end up in :meth:`progress`."""
        from app.runtime.engines import EngineError, make_engine

        engine = None
        try:
            engine = make_engine(self.engine_name, self.model, self.workers)
            self.engine_description = engine.describe()
            self._start = time.monotonic()  # ETA from the first chunk on, start-up apart
            pending = {engine.submit(*self._slice(s), self.params) for s in range(0, len(self.dataset), self.chunk)}
            while pending and not self._cancel.is_set():
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in finished:
                    with self._lock:
                        self._chunks.append(f.result())
            for f in pending:
                f.cancel()
            self._state = "cancelled" if self._cancel.is_set() else "done"
        except (EngineError, InputError, ValueError) as e:
            self._state, self._error = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - a worker's crash: the message, never a traceback
            self._state, self._error = "failed", f"{type(e).__name__}: {e}"
        finally:
            self._end = time.monotonic()
            if engine is not None:
                engine.close()
        return self

    def _slice(self, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, e = self.dataset, s + self.chunk
        inputs = list(d.texts[s:e]) if d.is_text else d.images[s:e]
        return inputs, d.labels[s:e], np.arange(s, min(e, len(d)), dtype=np.int64)

    def cancel(self) -> None:
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def progress(self) -> Progress:
        with self._lock:
            done = sum(len(c.index) for c in self._chunks)
        elapsed = (self._end or time.monotonic()) - self._start
        total = len(self.dataset)
        eta = elapsed / done * (total - done) if done and self._state == "running" else None
        return Progress(done, total, elapsed, eta, self._state, self._error)

    def examples(self) -> ChunkResult | None:
        """The examples analysed so far, in dataset order (None before the first chunk)."""
        with self._lock:
            chunks = list(self._chunks)
        return gather(chunks) if chunks else None

    def summary(self) -> Any:
        ex = self.examples()
        return None if ex is None else summarise(ex, self.labels)
