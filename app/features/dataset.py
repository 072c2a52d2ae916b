"""The Dataset page: a classifier over a whole dataset, with its explanations aggregated.

Accuracy with a Wilson interval and a confusion matrix; slices by class, by confidence and by any
extra column of the dataset's labels.csv; the worst-explained and the most-confused examples, each a
link to its own Attribution view; mean |IG| maps per class; deletion/insertion AUC distributions per
method, the methods ranked. The job runs in the background on the local pool or Ray
(:mod:`app.runtime.dataset`): a progress bar with ETA, Cancel, and the examples done so far shown
as they come. A finished run is stored like any share and reopens from its link.

Link: ``/dataset?model=vit-dot&dataset=heldout&limit=100&n_steps=16`` or ``?id=<link id>``.
"""

from __future__ import annotations

import os
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import streamlit as st

from analyzers.dataset import (
    ChunkResult, DatasetParams, confidence_bin_names, confidence_slice, most_confused, summarise, worst_explained,
)
from app.charts.base import confusion_chart
from app.charts.dataset import auc_distributions_chart, class_maps_chart, slice_chart
from app.features import dataset_text
from app.links import binding
from app.links.catalogue import dataset_models
from app.links.codec import Params, Query, QueryReader, canonical, defaults, params_object, read_params, saved_link
from app.runtime import share
from app.runtime.dataset import HELDOUT, Dataset, DatasetJob, dataset_from_bytes, load_dataset, named_datasets
from app.runtime.engines import ENGINES
from app.runtime.inputs import InputError
from app.ui import messages, session
from app.ui.figures import show
from app.ui.sharing import share_button

DEFAULT_MODEL = "vit-dot"
UPLOAD = "upload"
MAX_LIMIT = 1000
_JOB = "zooscope.dataset.job"  # session-state key: (view query signature, DatasetJob)
_ARRAYS = ("index", "label", "prediction", "confidence", "target", "rel_error", "attributions", "deletion",
           "insertion", "random_deletion", "random_insertion")


def datasets() -> tuple[str, ...]:
    """What the dataset picker offers: the held-out split, the server's named datasets, an upload."""
    return (HELDOUT, *named_datasets(), UPLOAD)


@dataclass(frozen=True)
class DatasetView:
    """The Dataset page: a model, a dataset, how many examples, the engine, the analysis params."""

    PAGE: ClassVar[str] = "dataset"

    model: str = DEFAULT_MODEL
    dataset: str = HELDOUT
    limit: int = 100
    engine: str = "local"
    workers: int = 2
    params: Params = field(default_factory=lambda: defaults(DatasetParams))
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[DatasetView, tuple[str, ...]]:
        r = QueryReader(query)
        saved = saved_link(cls, r)
        if saved is not None:
            return saved
        models = dataset_models()
        model = r.choice("model", models, DEFAULT_MODEL if DEFAULT_MODEL in models else models[0], "model")
        dataset = r.choice("dataset", datasets(), HELDOUT, "dataset")
        limit = r.integer("limit", 1, MAX_LIMIT, 100, "limit (examples)")
        engine = r.choice("engine", ENGINES, "local", "engine")
        workers = r.integer("workers", 1, max_workers(), min(2, max_workers()), "workers")
        return cls(model, dataset, limit, engine, workers, read_params(r, DatasetParams)), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        base = dict(defaults(DatasetParams))
        changed = {k: v for k, v in self.params if base.get(k) != v}
        return {"model": self.model, "dataset": self.dataset, "limit": str(self.limit), "engine": self.engine,
                "workers": str(self.workers), **changed}

    def params_object(self) -> DatasetParams:
        return params_object(DatasetParams, self.params)


def max_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


# --------------------------------------------------------------------------- settings


def run_settings(keys: session.WidgetKeys, seed: DatasetView, host: Any = st) -> tuple[int, str, int, Params]:
    """Limit, engine, workers and the analysis params (IG steps, faithfulness) of the run."""
    limit = host.number_input("Examples", 1, MAX_LIMIT, step=10, key=keys.key("limit", seed.limit),
                              help="Analyse the first N examples (the held-out split is shuffled once, seed 0)")
    engine = host.selectbox("Engine", ENGINES, key=keys.key("engine", seed.engine, ENGINES),
                        help="local: a process pool here; ray: Ray actors (ZOOSCOPE_RAY_ADDRESS, else a local Ray)")
    workers = host.number_input("Workers", 1, max_workers(), step=1, key=keys.key("workers", seed.workers),
                                help="Processes (or Ray actors), each holding the model once")
    current = seed.params_object()
    with host.expander("Analysis parameters"):
        n_steps = host.number_input("IG steps", 2, 256, step=1, key=keys.key("n_steps", current.n_steps))
        choices = ("all", "integrated_gradients", "none")
        faith = host.selectbox("Faithfulness curves for", choices, key=keys.key("faith", current.faithfulness,
                                                                                 choices))
        explain = host.selectbox("Explain", ("label", "predicted"), key=keys.key("explain", current.explain,
                                                                                  ("label", "predicted")))
    params = current.replace(n_steps=int(n_steps), faithfulness=faith, explain=explain)
    return int(limit), engine, int(workers), canonical(params)


@dataclass(frozen=True)
class Upload:
    """A visitor's file, read once the model (image or text classifier) is known."""

    name: str
    data: bytes


def upload_dataset(keys: session.WidgetKeys, host: Any = st) -> Upload | None:
    """A zip of digit images or a CSV/JSONL of texts uploaded by the visitor (None: none yet)."""
    file = host.file_uploader("Dataset (.zip of images, .csv/.jsonl of texts)", type=["zip", "csv", "jsonl"],
                              key=keys.name("upload"),
                              help="Images: digits in folders named by their label (3/a.png), or a labels.csv with "
                                   "file,label. Texts (text classifiers): columns text and label (the model's label "
                                   "names). Extra columns become slices.")
    return None if file is None else Upload(file.name, file.getvalue())


def is_text_model(model: str) -> bool:
    from model_zoo import get_spec

    return get_spec(model).input.modality == "text"


def dataset_for(view: DatasetView, uploaded: Upload | Dataset | None, labels: tuple[str, ...]) -> Dataset | None:
    text = is_text_model(view.model)
    try:
        if view.dataset == UPLOAD:
            if isinstance(uploaded, Upload):
                uploaded = dataset_from_bytes(uploaded.name, uploaded.data, labels, MAX_LIMIT, text=text)
            return uploaded.head(view.limit) if uploaded is not None else None
        return load_dataset(view.dataset, labels, view.limit, text=text)
    except InputError as e:
        messages.error(str(e))
        return None


# --------------------------------------------------------------------------- the job


def current_job(view: DatasetView) -> DatasetJob | None:
    """This session's job for this view (None: not started, or started for other settings)."""
    held = st.session_state.get(_JOB)
    return held[1] if held and held[0] == _signature(view) else None


def start_job(view: DatasetView, data: Dataset, labels: tuple[str, ...]) -> None:
    old = st.session_state.get(_JOB)
    if old:
        old[1].cancel()
    job = DatasetJob(view.model, data, view.params_object(), labels, engine=view.engine, workers=view.workers)
    st.session_state[_JOB] = (_signature(view), job.start())


def _signature(view: DatasetView) -> str:
    return repr(sorted(view.to_query().items()))


def progress_panel(job: DatasetJob) -> None:
    """Progress bar with ETA and a Cancel button while the job runs."""
    p = job.progress()
    eta = f", about {p.eta_s:.0f} s left" if p.eta_s is not None else ""
    where = f" on {job.engine_description}" if job.engine_description else " (starting the workers)"
    st.progress(p.done / max(p.total, 1), text=f"{p.done} of {p.total} examples{where}, {p.elapsed_s:.0f} s{eta}")
    if p.state == "running":
        st.button("Cancel", icon=":material/cancel:", key="dataset-cancel", on_click=job.cancel,
                  help="Stop after the chunks now running; the examples done so far stay on screen")
    elif p.state == "cancelled":
        messages.warning(f"Cancelled after {p.done} of {p.total} examples; below are the results so far.")
    elif p.state == "failed":
        messages.error(f"The analysis stopped: {p.error}")


# --------------------------------------------------------------------------- saving and reopening


def to_arrays(ex: ChunkResult, data: Dataset) -> dict[str, np.ndarray]:
    """What a share keeps: every per-example array, the held-out indices and extra columns."""
    out = {k: np.asarray(getattr(ex, k)) for k in _ARRAYS}
    if dataset_text.is_text(ex):
        out.update(dataset_text.encode(ex))
    out["methods"] = np.asarray(ex.methods, dtype=str)
    out["heldout"] = data.heldout[ex.index]
    out["names"] = np.asarray([data.names[i] for i in ex.index], dtype=str)
    for c, values in data.extra.items():
        out[f"extra.{c}"] = np.asarray([values[i] for i in ex.index], dtype=str)
    return out


def from_arrays(arrays: dict[str, np.ndarray]) -> tuple[ChunkResult, np.ndarray, dict[str, np.ndarray]]:
    values = {k: arrays[k] for k in _ARRAYS}
    if "words" in arrays:  # a text run
        values.update(dataset_text.decode(arrays))
    ex = ChunkResult(**values, methods=tuple(str(m) for m in arrays["methods"]))
    extra = {k.removeprefix("extra."): v for k, v in arrays.items() if k.startswith("extra.")}
    return ex, arrays["heldout"], extra


def saved_results(link: str) -> tuple[ChunkResult, np.ndarray, dict[str, np.ndarray]] | None:
    try:
        return from_arrays(share.open_link(link).inputs)
    except (share.LinkProblem, KeyError) as e:
        messages.error(f"This saved dataset analysis cannot be shown: {e}")
        return None


# --------------------------------------------------------------------------- panels


def headline(ex: ChunkResult, labels: tuple[str, ...]) -> Any:
    s = summarise(ex, labels)
    lo, hi = s.interval()
    a, b, c = st.columns(3)
    a.metric("Accuracy", f"{s.accuracy:.1%}" if s.n_labelled else "no labels",
             help=f"{s.correct} of {s.n_labelled} labelled examples; 95% Wilson interval {lo:.1%}–{hi:.1%}")
    b.caption(f"95% interval **{lo:.1%} – {hi:.1%}** over {s.n_labelled} labelled examples" if s.n_labelled else "")
    c.metric("Mean IG completeness error", f"{s.mean_rel_error:.2%}",
             help="|sum of attributions - (F(x) - F(baseline))| / |F(x) - F(baseline)|, averaged over examples")
    return s


def confusion_panel(s: Any) -> None:
    show(confusion_chart(s.confusion, s.labels, title="Confusion matrix"), "Confusion matrix", key="ds-confusion")


def slices_panel(ex: ChunkResult, labels: tuple[str, ...], extra: dict[str, np.ndarray]) -> None:
    """Accuracy by true class, by confidence, and by each extra column."""
    known = ex.label >= 0
    right = ex.label == ex.prediction

    def table(groups: np.ndarray, names: list[str]) -> tuple[list[str], list[float], list[int]]:
        rows = [(n, float(right[known & (groups == g)].mean()), int((known & (groups == g)).sum()))
                for g, n in enumerate(names) if (known & (groups == g)).any()]
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    charts = [(slice_chart(*table(ex.label, list(labels)), "Accuracy by true class", "class"), "class"),
              (slice_chart(*table(confidence_slice(ex.confidence), list(confidence_bin_names())),
                           "Accuracy by confidence", "confidence of the prediction"), "confidence")]
    for name, values in extra.items():
        levels = sorted(set(values.tolist()))[:20]
        groups = np.array([levels.index(v) if v in levels else -1 for v in values.tolist()])
        charts.append((slice_chart(*table(groups, levels), f"Accuracy by {name}", name), name))
    for i in range(0, len(charts), 2):
        for col, (chart, name) in zip(st.columns(2), charts[i:i + 2]):
            with col:
                show(chart, f"Accuracy by {name}", key=f"ds-slice-{name}")


def attribution_link(model: str, heldout: int, target: int, params: DatasetParams) -> str | None:
    """The Attribution page's URL for held-out example ``heldout`` with this run's IG settings."""
    if heldout < 0:
        return None
    query = {"model": model, "method": "integrated_gradients", "sample": heldout, "target": target,
             "n_steps": params.n_steps}
    if params.baseline != "black":
        query["baseline"] = params.baseline
    return "/attribution?" + "&".join(f"{k}={v}" for k, v in query.items())


def examples_panel(ex: ChunkResult, heldout: np.ndarray, labels: tuple[str, ...], model: str,
                   params: DatasetParams) -> None:
    """The worst-explained and the most-confused examples, each a link to its attribution view."""
    left, right = st.columns(2)
    for host, title, rows in ((left, "Worst explained (largest completeness error)", worst_explained(ex)),
                              (right, "Most confused (wrong and sure)", most_confused(ex))):
        with host:
            st.markdown(f"**{messages.escape(title)}**")
            if not len(rows):
                st.caption("None so far.")
            for i in rows:
                link = attribution_link(model, int(heldout[i]), int(ex.target[i]), params)
                truth = labels[ex.label[i]] if ex.label[i] >= 0 else "?"
                text = (f"#{int(ex.index[i])}: true {truth}, predicted {labels[ex.prediction[i]]} "
                        f"({ex.confidence[i]:.0%}), rel_error {ex.rel_error[i]:.1%}")
                st.markdown(f"[{messages.escape(text)}]({link})" if link else messages.escape(text))


def maps_panel(s: Any) -> None:
    show(class_maps_chart(s.class_maps[:, 0], s.labels, s.class_counts), "Mean |IG| per class", key="ds-maps")


def faithfulness_panel(ex: ChunkResult, s: Any) -> None:
    if not ex.methods:
        st.caption("No faithfulness curves in this run.")
        return
    ranked = s.ranking()
    show(auc_distributions_chart(ex.deletion, ex.insertion, ex.methods, ranked, s.mean_random_deletion),
         "Deletion and insertion AUC", key="ds-auc")
    rows = [{"rank": r + 1, "method": m, "mean deletion AUC": float(s.mean_deletion[ex.methods.index(m)]),
             "mean insertion AUC": float(s.mean_insertion[ex.methods.index(m)])} for r, m in enumerate(ranked)]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(f"A random ordering gives deletion AUC {s.mean_random_deletion:.3f}, insertion AUC "
               f"{s.mean_random_insertion:.3f}: a method below (above) them orders pixels better than chance.")


def results(view: DatasetView, ex: ChunkResult, heldout: np.ndarray, extra: dict[str, np.ndarray],
            labels: tuple[str, ...]) -> None:
    """Every panel, for the examples done so far (or all of them)."""
    s = headline(ex, labels)
    st.subheader("Where the errors fall", divider="gray")
    confusion_panel(s)
    st.caption("Slices: accuracy within each group; the number above a bar is the group's size.")
    slices_panel(ex, labels, extra)
    if dataset_text.is_text(ex):
        dataset_text.text_results(ex, s, labels)
        return
    st.subheader("Examples to look at", divider="gray")
    examples_panel(ex, heldout, labels, view.model, view.params_object())
    st.subheader("Mean |IG| per class", divider="gray")
    st.caption("Each map is the mean absolute Integrated Gradients of the examples explained for that class "
               "(its own colour scale).")
    maps_panel(s)
    st.subheader("Faithfulness per method", divider="gray")
    faithfulness_panel(ex, s)


def live(job: DatasetJob, view: DatasetView, labels: tuple[str, ...]) -> None:
    """The job's progress and results, refreshed every second while it runs; Share once it is done."""
    running = job.progress().state == "running"
    share_slot = st.container()  # Share sits at the top of the results, as on every page
    st.fragment(run_every=1.0 if running else None)(_live)(job, view, labels, running)
    ex = job.examples()
    if not running and job.progress().state == "done" and ex is not None:
        title = f"Dataset · {view.model} · {job.dataset.name} · {len(ex.index)} examples"
        with share_slot:
            view = share_button(view, title=title, inputs=to_arrays(ex, job.dataset), results={},
                                models=(view.model,))
        binding.publish(view)


def _live(job: DatasetJob, view: DatasetView, labels: tuple[str, ...], was_running: bool) -> None:
    p = job.progress()
    if was_running and p.state != "running":
        st.rerun()  # the whole page once more: the final results and the Share button
    progress_panel(job)
    ex = job.examples()
    if ex is None:
        return
    if p.state == "running":
        st.caption(f"Partial results: the {len(ex.index)} examples done so far.")
    data = job.dataset
    results(view, ex, data.heldout[ex.index], {c: np.asarray(v)[ex.index] for c, v in data.extra.items()}, labels)
