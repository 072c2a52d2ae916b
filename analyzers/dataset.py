"""Whole-dataset analysis: per-example predictions, Integrated Gradients with its completeness error,
per-class mean |IG| maps, and deletion/insertion AUC per attribution method; then one summary.

Two halves, so a job can run the first anywhere (a process pool, Ray actors) and the second once:

- :func:`analyse_chunk` (pure, one model): a chunk of examples -> a :class:`ChunkResult` of numpy
  arrays (picklable, small: the maps are per example, 784 floats each).
- :func:`gather` + :func:`summarise`: chunks in any order -> examples sorted by their index ->
  a :class:`DatasetSummary` accumulated in float64 in example order. The summary depends only on
  the examples, never on which worker ran which chunk or in what order they came back, so every
  engine gives byte-identical JSON (:func:`summary_json`).

Faithfulness (Petsiuk et al. 2018, RISE, https://arxiv.org/abs/1806.07421) runs through
:func:`analyzers.faithfulness.deletion_insertion`; methods are ranked by their mean deletion AUC
(lower: the score falls faster when the top-ranked pixels go) and insertion AUC (higher is better),
as Quantus reports them (Hedström et al. 2023, https://arxiv.org/abs/2202.06861).
Text models get mean token attributions per class from :func:`token_means`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .attribution import ATTRIBUTION_METHODS, attribute_with_targets
from .attribution_params import IGParams
from .faithfulness import CurveParams, deletion_insertion
from .forward import image_batch, score_fn
from .params import IG_METHODS, ParamError, Params, baseline_param, param

FAITHFULNESS_METHODS = ("integrated_gradients", "saliency", "input_x_gradient")
CONFIDENCE_BINS = (0.0, 0.5, 0.7, 0.9, 0.99, 1.0000001)  # right-open; the last one holds 1.0


@dataclass(frozen=True)
class DatasetParams(Params):
    """A whole-dataset analysis: IG per example, then deletion/insertion curves per attribution method."""

    n_steps: int = param(16, min=2, max=256, help="Steps of Integrated Gradients per example")
    method: str = param("gausslegendre", choices=IG_METHODS, help="Quadrature rule of the path integral")
    baseline: str = baseline_param()
    explain: str = param("label", choices=("label", "predicted"),
                        help="Explain the true class's score (predicted class where a file has no label)")
    faithfulness: str = param("all", choices=("all", "integrated_gradients", "none"),
                              help="Deletion/insertion curves for every gradient method, for IG only, or none")
    curve_steps: int = param(10, min=2, max=49, help="Points on each deletion/insertion curve after the start")
    unit: str = param("patch", choices=("pixel", "patch"), help="Delete single pixels or 4x4 patches")
    random_seeds: int = param(1, min=1, max=5, help="Random orderings the curves are compared with")

    def cost_factors(self) -> dict[str, int]:
        """IG's path points plus the curves' forward passes, per example."""
        curves = (self.curve_steps + 1) * 2 * (1 + self.random_seeds) * len(self.methods())
        return {"n_steps": self.n_steps + max(1, curves // 4)}

    def methods(self) -> tuple[str, ...]:
        """The attribution methods whose deletion/insertion curves are measured."""
        return {"all": FAITHFULNESS_METHODS, "integrated_gradients": FAITHFULNESS_METHODS[:1], "none": ()}[
            self.faithfulness]

    def ig_params(self) -> IGParams:
        return IGParams(n_steps=self.n_steps, method=self.method, baseline=self.baseline, internal_batch_size=0)


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk of examples gave, example by example (n examples, M methods, K classes)."""

    index: np.ndarray  # (n,) int64: the examples' positions in the dataset
    label: np.ndarray  # (n,) int64: true class, -1 when unknown
    prediction: np.ndarray  # (n,) int64
    confidence: np.ndarray  # (n,) float64: softmax probability (capsule length) of the prediction
    target: np.ndarray  # (n,) int64: the class explained
    rel_error: np.ndarray  # (n,) float64: IG's completeness error
    attributions: np.ndarray  # (n, 1, 28, 28) float32: IG
    deletion: np.ndarray  # (n, M) float64 AUC per method
    insertion: np.ndarray  # (n, M) float64
    random_deletion: np.ndarray  # (n,) float64: the same curves for a random ordering
    random_insertion: np.ndarray  # (n,) float64
    methods: tuple[str, ...] = ()
    seconds: float = 0.0
    worker: str = ""
    words: np.ndarray | None = None  # text: (n,) object, each a tuple of readable words (attributions: their scores)


def confidences(scores: torch.Tensor, spec) -> torch.Tensor:
    """(B,) how sure the model is of its prediction: softmax of logits; a capsule's length as it is."""
    if spec.family == "capsule":
        return scores.max(1).values
    return torch.softmax(scores.double(), 1).max(1).values


def analyse_chunk(model, spec, images: torch.Tensor | np.ndarray, labels: Sequence[int], index: Sequence[int],
                  params: DatasetParams = DatasetParams()) -> ChunkResult:
    """Predictions, IG with its completeness error, and deletion/insertion AUC per method, for one chunk."""
    if "classifier" in spec.capabilities and spec.input.modality == "text":
        return analyse_text_chunk(model, spec, images, labels, index, params)
    if "classifier" not in spec.capabilities or spec.input.modality != "image":
        raise ParamError(f"whole-dataset analysis needs an image classifier or a text classifier; {spec.name} is a "
                         f"{spec.task} model")
    import time

    start = time.perf_counter()
    device = next(iter(model.parameters())).device
    x = image_batch(torch.as_tensor(np.asarray(images, dtype=np.float32)), spec, device)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    with torch.no_grad():
        scores = score_fn(model, spec)(x)
    pred = scores.argmax(1)
    target = torch.where((y >= 0) & (params.explain == "label"), y, pred)
    ig = attribute_with_targets(model, spec, x, "integrated_gradients", params.ig_params(), target)
    methods = params.methods()
    dele = np.zeros((len(x), len(methods)))
    ins = np.zeros_like(dele)
    rnd_d = rnd_i = np.full(len(x), np.nan)
    for m, name in enumerate(methods):
        given = ig if name == "integrated_gradients" else attribute_with_targets(
            model, spec, x, name, ATTRIBUTION_METHODS[name].params(), target)
        curves = deletion_insertion(model, spec, x, CurveParams(
            attribution=name, unit=params.unit, steps=params.curve_steps, baseline=params.baseline,
            random_seeds=params.random_seeds), attributions=given)
        dele[:, m], ins[:, m] = curves.deletion_auc, curves.insertion_auc
        rnd_d, rnd_i = curves.random_deletion_auc, curves.random_insertion_auc
    return ChunkResult(
        index=np.asarray(index, dtype=np.int64), label=y.cpu().numpy().astype(np.int64),
        prediction=pred.cpu().numpy().astype(np.int64),
        confidence=confidences(scores, spec).double().cpu().numpy(), target=target.cpu().numpy().astype(np.int64),
        rel_error=np.asarray(ig.rel_error, dtype=np.float64), attributions=ig.attributions.astype(np.float32),
        deletion=dele, insertion=ins, random_deletion=np.asarray(rnd_d, np.float64),
        random_insertion=np.asarray(rnd_i, np.float64), methods=methods, seconds=time.perf_counter() - start,
    )


def analyse_text_chunk(model, spec, texts: Sequence[str], labels: Sequence[int], index: Sequence[int],
                       params: DatasetParams = DatasetParams()) -> ChunkResult:
    """Text: predictions, IG through the word embeddings (pad baseline) with its completeness error, and
    each example's readable words with their attributions (no deletion curves: ``methods`` is empty)."""
    import time

    from .text_classification import TextIGParams, classifier_integrated_gradients
    from .tokens import merge_scores

    start = time.perf_counter()
    texts = [str(t) for t in texts]
    device = next(iter(model.parameters())).device
    y = np.asarray(labels, dtype=np.int64)
    with torch.no_grad():
        enc = model.tokenize(texts)
        scores = model.scores(enc["input_ids"].to(device), enc["attention_mask"].to(device))
    pred = scores.argmax(1).cpu().numpy().astype(np.int64)
    target = np.where((y >= 0) & (params.explain == "label"), y, pred).astype(np.int64)
    rel = np.full(len(texts), np.nan)
    words = np.empty(len(texts), dtype=object)
    attributions = np.empty(len(texts), dtype=object)
    for t in sorted(set(target.tolist())):  # one IG call per explained class
        rows = np.flatnonzero(target == t)
        ig = classifier_integrated_gradients(model, spec, [texts[i] for i in rows], TextIGParams(
            n_steps=params.n_steps, method=params.method, baseline="pad", target=int(t)))
        for j, i in enumerate(rows.tolist()):
            pieces = ig.tokens[j]
            merged = [(w, v) for w, v in merge_scores(pieces, ig.attributions[j][: len(pieces)].tolist())
                      if not w.special]
            words[i] = tuple(w.text for w, _ in merged)
            attributions[i] = np.asarray([v for _, v in merged], dtype=np.float64)
            rel[i] = float(ig.rel_error[j])
    n = len(texts)
    return ChunkResult(
        index=np.asarray(index, dtype=np.int64), label=y, prediction=pred,
        confidence=confidences(scores, spec).double().cpu().numpy(), target=target, rel_error=rel,
        attributions=attributions, deletion=np.zeros((n, 0)), insertion=np.zeros((n, 0)),
        random_deletion=np.full(n, np.nan), random_insertion=np.full(n, np.nan), methods=(),
        seconds=time.perf_counter() - start, words=words,
    )


# --------------------------------------------------------------------------- gather and summarise

_PER_EXAMPLE = ("index", "label", "prediction", "confidence", "target", "rel_error", "attributions", "deletion",
                "insertion", "random_deletion", "random_insertion")


def gather(chunks: Iterable[ChunkResult]) -> ChunkResult:
    """All chunks as one, examples sorted by index (whatever order the chunks came back in)."""
    chunks = [c for c in chunks if len(c.index)]
    if not chunks:
        raise ParamError("no examples were analysed yet")
    methods = chunks[0].methods
    if any(c.methods != methods for c in chunks):
        raise ParamError("chunks of one job measured different methods")
    order = np.argsort(np.concatenate([c.index for c in chunks]), kind="stable")
    arrays = {k: np.concatenate([getattr(c, k) for c in chunks])[order] for k in _PER_EXAMPLE}
    if chunks[0].words is not None:
        arrays["words"] = np.concatenate([c.words for c in chunks])[order]
    return ChunkResult(**arrays, methods=methods, seconds=float(sum(c.seconds for c in chunks)))


@dataclass(frozen=True)
class DatasetSummary:
    """What a whole dataset (or the part done so far) says about a model and its explanations."""

    labels: tuple[str, ...]
    n: int
    n_labelled: int
    correct: int
    confusion: np.ndarray  # (K, K) int64: row = true class, column = predicted
    mean_rel_error: float
    class_maps: np.ndarray  # (K, 1, 28, 28) float64: mean |IG| per explained class (NaN: none)
    class_counts: np.ndarray  # (K,) int64
    methods: tuple[str, ...]
    mean_deletion: np.ndarray  # (M,) float64
    mean_insertion: np.ndarray  # (M,) float64
    mean_random_deletion: float
    mean_random_insertion: float
    extra: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n_labelled if self.n_labelled else float("nan")

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """The Wilson score interval of the accuracy (as ``app.runtime.evaluation`` gives it)."""
        return wilson(self.correct, self.n_labelled, confidence)

    def ranking(self) -> list[str]:
        """Methods best first: lowest mean deletion AUC, ties broken by the higher insertion AUC."""
        keys = [(round(float(d), 12), -round(float(i), 12), m)
                for m, d, i in zip(self.methods, self.mean_deletion, self.mean_insertion)]
        return [m for _, _, m in sorted(keys)]


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's binomtest, the same call as the held-out evaluation)."""
    if n == 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def summarise(ex: ChunkResult, labels: Sequence[str]) -> DatasetSummary:
    """The summary of gathered examples, accumulated in float64 in example order (deterministic)."""
    k = len(labels)
    known = ex.label >= 0
    truth, pred = ex.label[known], ex.prediction[known]
    confusion = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k).astype(np.int64)
    counts = np.bincount(ex.target, minlength=k).astype(np.int64)
    extra = {}
    if ex.words is not None:  # text: per class the words with the largest mean attribution, no maps
        maps = np.zeros((k, 0), dtype=np.float64)
        extra["class_words"] = token_means(ex.words, ex.attributions, ex.target.tolist(), k)
    else:
        maps = np.zeros((k, *ex.attributions.shape[1:]), dtype=np.float64)
        for t, a in zip(ex.target.tolist(), ex.attributions):  # example order, float64
            maps[t] += np.abs(a.astype(np.float64))
        with np.errstate(invalid="ignore"):
            maps /= counts[:, None, None, None]
    finite = ex.rel_error[np.isfinite(ex.rel_error)]
    return DatasetSummary(
        labels=tuple(labels), n=len(ex.index), n_labelled=int(known.sum()), correct=int((truth == pred).sum()),
        confusion=confusion, mean_rel_error=_mean(finite), class_maps=maps, class_counts=counts,
        methods=ex.methods, mean_deletion=np.array([_mean(ex.deletion[:, m]) for m in range(len(ex.methods))]),
        mean_insertion=np.array([_mean(ex.insertion[:, m]) for m in range(len(ex.methods))]),
        mean_random_deletion=_mean(ex.random_deletion), mean_random_insertion=_mean(ex.random_insertion),
        extra=extra,
    )


def _mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(math.fsum(values.tolist()) / len(values)) if len(values) else float("nan")


def _num(x: float, digits: int = 6) -> float | None:
    return round(float(x), digits) if math.isfinite(x) else None


def summary_json(summary: DatasetSummary) -> dict:
    """The command line's summary, every number rounded to 6 decimals: the same bytes from every engine."""
    low, high = summary.interval()
    if "class_words" in summary.extra:  # text: top words per class instead of maps, no deletion curves
        return {
            "examples": summary.n, "labelled": summary.n_labelled,
            "accuracy": _num(summary.accuracy), "accuracy_ci95": [_num(low), _num(high)],
            "mean_rel_error": _num(summary.mean_rel_error),
            "class_top_words": {lab: [[w, _num(m), c] for w, m, c in summary.extra["class_words"][i]]
                                for i, lab in enumerate(summary.labels)},
            "confusion": summary.confusion.tolist(),
        }
    return {
        "examples": summary.n, "labelled": summary.n_labelled,
        "accuracy": _num(summary.accuracy), "accuracy_ci95": [_num(low), _num(high)],
        "mean_rel_error": _num(summary.mean_rel_error),
        "class_attribution_sum": {lab: _num(float(summary.class_maps[i].sum())) if summary.class_counts[i] else None
                                  for i, lab in enumerate(summary.labels)},
        "mean_deletion_auc": {m: _num(d) for m, d in zip(summary.methods, summary.mean_deletion)},
        "mean_insertion_auc": {m: _num(v) for m, v in zip(summary.methods, summary.mean_insertion)},
        "random_deletion_auc": _num(summary.mean_random_deletion),
        "methods_ranked": summary.ranking(),
    }


# --------------------------------------------------------------------------- slices and examples


def confidence_slice(confidence: np.ndarray) -> np.ndarray:
    """(n,) the confidence bin of each example: an index into ``CONFIDENCE_BINS``' intervals."""
    return np.clip(np.searchsorted(CONFIDENCE_BINS, confidence, side="right") - 1, 0, len(CONFIDENCE_BINS) - 2)


def confidence_bin_names() -> tuple[str, ...]:
    edges = CONFIDENCE_BINS
    return tuple(f"{edges[i]:.2f}–{min(edges[i + 1], 1.0):.2f}" for i in range(len(edges) - 1))


def worst_explained(ex: ChunkResult, n: int = 8) -> np.ndarray:
    """Positions (into the gathered examples) of the largest completeness errors, worst first."""
    err = np.where(np.isfinite(ex.rel_error), ex.rel_error, -1.0)
    order = np.lexsort((ex.index, -err))  # ties: the earlier example first
    return order[:n][err[order[:n]] >= 0]


def most_confused(ex: ChunkResult, n: int = 8) -> np.ndarray:
    """Positions of wrong predictions made most confidently, most confident first."""
    wrong = np.flatnonzero((ex.label >= 0) & (ex.label != ex.prediction))
    order = np.lexsort((ex.index[wrong], -ex.confidence[wrong]))
    return wrong[order][:n]


def token_means(tokens: Sequence[Sequence[str]], scores: Sequence[np.ndarray], classes: Sequence[int],
                n_classes: int, top: int = 10) -> list[list[tuple[str, float, int]]]:
    """Text: per class, the tokens with the largest mean attribution (token, mean, count), in example order.

    ``scores[i]`` holds example i's attribution per token; special tokens ([CLS], [SEP], [PAD]) are skipped.
    """
    sums: list[dict[str, list[float]]] = [dict() for _ in range(n_classes)]
    for toks, s, c in zip(tokens, scores, classes):
        for tok, v in zip(toks, np.asarray(s, dtype=np.float64).tolist()):
            if tok in ("[CLS]", "[SEP]", "[PAD]"):
                continue
            sums[c].setdefault(tok, []).append(v)
    out = []
    for table in sums:
        rows = [(tok, math.fsum(vs) / len(vs), len(vs)) for tok, vs in table.items()]
        rows.sort(key=lambda r: (-r[1], r[0]))
        out.append(rows[:top])
    return out
