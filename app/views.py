"""Render pieces shared by the pages: sidebar, input picker, result panels, share and provenance.

Pages compose these; none of them knows a model by name or touches torch. A page's view class
lives in a module (not in the page file, which is re-executed on every run): a frozen dataclass
with ``PAGE``, ``link``, ``from_query`` and ``to_query``, e.g. a subclass of ``state.AnalysisView``::

    @dataclass(frozen=True)
    class CapsulesView(state.AnalysisView):
        PAGE: ClassVar[str] = "capsules"
        ANALYZERS: ClassVar[tuple[str, ...]] = ("capsule_routing", "pose_perturbation")
        DEFAULT_MODEL: ClassVar[str] = "capsnet"

A page then is::

    bound = state.bind(CapsulesView)                    # URL / share link / last view -> typed view
    messages.link_problems(bound.problems)              # what was wrong with the link, if anything
    keys = session.WidgetKeys(CapsulesView.PAGE, force=bound.opened)
    with views.settings(st.container(), keys) as ui:    # the controls, or an opened link's settings as text
        models = CapsulesView.models()
        model = ui.selectbox("Model", models, key=keys.key("model", bound.view.model, models))
        picked = views.input_picker(keys, bound.view.input, host=ui)
        params = widgets.params_form(CapsuleParams, bound.view.params_of("capsule_routing"), keys,
                                     prefix="capsule_routing", host=ui)
    view = state.settle(bound, CapsulesView(model=model, input=picked.ref).with_params("capsule_routing", params))
    state.publish(view)                                 # the URL reproduces the view
    saved = views.saved_results(view.link)              # a share link: show the stored results
    results = saved.results if saved else {"routing": views.computed("Routing…",
        lambda: compute.run("capsule_routing", model, params, picked.pixels))}
    ... charts.show(charts.heatmap_chart(...), "Routing", key="routing") ...
    view = views.share_button(view, title=..., inputs={"pixels": picked.pixels}, results=results, models=(model,))
    state.publish(view)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from app import cache, charts, messages, navigation, session, share, state, widgets
from app.state import InputRef

_log = logging.getLogger(__name__)

THUMB_SCALE = 5  # 28 px -> 140 px, nearest neighbour: crisp pixels


# --------------------------------------------------------------------------- frame


@contextlib.contextmanager
def settings(place: Any, keys: session.WidgetKeys) -> Iterator[Any]:
    """A page's settings, drawn in ``place``: yields where the settings code puts its widgets.

    Normally that is ``st`` (inside ``place``), and the controls are drawn. While the page shows a
    share link as it was opened, it is a :class:`widgets.SettingsSummary`: the same code runs and
    reads the link's values, and ``place`` shows them as text with a "Change settings" button
    that brings the controls back, set to those values. A person who opens a link sees what was
    analysed, every setting included, before anything invites them to change it (and the page
    does not draw a dozen controls they did not ask for).
    """
    with place:
        if keys.page not in session.current().reading:
            yield st
            return
        summary = widgets.SettingsSummary()
        yield summary
        st.markdown(f"**Settings of this shared analysis**  \n{summary.markdown()}")
        for args, kwargs in summary.images:
            st.image(*args, **kwargs)
        st.button("Change settings", key=keys.name("change-settings"), icon=":material/tune:",
                  on_click=_stop_reading, args=(keys.page,),
                  help="Show the controls, set to these values. The saved numbers stay until a setting changes.")


def _stop_reading(page: str) -> None:
    session.current().reading.discard(page)


def sidebar() -> None:
    """Device the models run on and the versions that decide the numbers."""
    from model_zoo import best_device

    with st.sidebar:
        st.caption(messages.escape(f"Models run on: {best_device()}"))
        st.caption("  \n".join(messages.escape(f"{k} {v}") for k, v in share.library_versions().items()))


def model_label(name: str) -> str:
    """A model's menu label: its name and family."""
    from model_zoo import get_spec

    return f"{name} · {get_spec(name).family}"


def method_label(name: str) -> str:
    """An analyzer's menu label (its human name)."""
    from analyzers import ANALYZERS

    entry = ANALYZERS.get(name)
    return entry.label if entry else name


def thumbnail(pixels: np.ndarray, scale: int = THUMB_SCALE) -> np.ndarray:
    """A (28, 28) image in [0, 1] as uint8, enlarged by pixel repetition (no blur)."""
    a = np.clip(np.asarray(pixels, dtype=np.float32), 0, 1)
    return (np.kron(a, np.ones((scale, scale), dtype=np.float32)) * 255).astype(np.uint8)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PickedInput:
    """The digit a view analyses: its pixels, its reference for the URL, and a label for people."""

    pixels: np.ndarray  # (28, 28) float32 in [0, 1]
    ref: InputRef
    label: str


SOURCES = ("Held-out digit", "Upload")


def input_picker(keys: session.WidgetKeys, ref: InputRef, name: str = "", label: str = "Input",
                 host: Any = st) -> PickedInput:
    """Choose a held-out digit (browse by class) or upload an image; seeded from ``ref``.

    ``name`` keeps the widgets of a second picker on the same page apart (e.g. ``name="b"``);
    ``host`` is ``st`` or the page's :class:`widgets.SettingsSummary` (see :func:`settings`).
    """
    w = f"{name}." if name else ""
    source = host.radio(label, SOURCES, horizontal=True,
                        key=keys.key(f"{w}source", SOURCES[1] if ref.upload else SOURCES[0], SOURCES))
    if source == SOURCES[1]:
        picked = _upload_picker(keys, ref, w, host)
        if picked is not None:
            return picked
        host.caption("Nothing uploaded yet: showing a held-out digit.")
    return _sample_picker(keys, ref, w, host)


def _sample_picker(keys: session.WidgetKeys, ref: InputRef, w: str, host: Any) -> PickedInput:
    y = cache.heldout_split().y_heldout
    classes = list(range(10))
    digit = host.selectbox("Digit class", classes, key=keys.key(f"{w}digit", int(y[ref.sample]), classes))
    indices = [int(i) for i in np.flatnonzero(y == digit)]
    sample = host.select_slider("Example", indices, key=keys.key(f"{w}sample", ref.sample, indices),
                                format_func=lambda i: f"#{i}")
    pixels = cache.sample_pixels(sample)
    host.image(thumbnail(pixels), caption=f"held-out #{sample}, labelled {digit}", width=140)
    return PickedInput(pixels, InputRef(sample=sample), f"held-out #{sample}")


def _upload_picker(keys: session.WidgetKeys, ref: InputRef, w: str, host: Any) -> PickedInput | None:
    import hashlib

    from app.inputs import InputError, decode_image, safe_filename_label

    data = session.current()
    file = host.file_uploader("Image of a digit", key=keys.name(f"{w}upload"),
                              help="PNG, JPEG, WebP, BMP or GIF, up to 5 MB. Dark-on-light digits are inverted.")
    sha = ref.upload
    if file is not None:
        raw = file.getvalue()
        sha = hashlib.sha256(raw).hexdigest()
        if sha not in data.uploads:
            try:
                with st.spinner("Reading the image…"):
                    decoded = decode_image(raw)
            except InputError as e:
                messages.error(str(e))
                return None
            data.remember_upload(sha, decoded, safe_filename_label(file.name))
    if not sha or sha not in data.uploads:
        return None
    decoded, name = data.uploads[sha], data.upload_names.get(sha, "upload")
    _show_upload(decoded, name, host)
    # The label goes into share titles, which everyone sees on Home: never the person's filename.
    return PickedInput(np.asarray(decoded.pixels, dtype=np.float32), InputRef(sample=ref.sample, upload=sha),
                       f"upload {sha[:8]}")


def _show_upload(decoded: Any, name: str, host: Any) -> None:
    host.text(name)  # the browser's filename, literally
    before, after = host.columns(2)
    before.image(np.clip(decoded.display, 0, 1), caption=f"as uploaded ({decoded.format})", width=120)
    after.image(thumbnail(decoded.pixels, 4), caption="as the model sees it (28 × 28)", width=120)
    for notice in decoded.notices:
        host.caption(messages.escape(notice))


# --------------------------------------------------------------------------- computing


def with_spinner(description: str, work: Any) -> Any:
    """``work()`` (which calls ``compute.run``): its cached result at once, else run under a spinner.

    Only work that really runs gets a spinner (each costs a thread and two messages).

    Raises:
        AnalysisError: the analysis could not run (the message is for people).
    """
    from app.compute import NotCached, cache_only

    try:
        with cache_only():
            return work()
    except NotCached:
        pass
    with st.spinner(description, show_time=True):
        return work()


def computed(description: str, work: Any) -> Any | None:
    """:func:`with_spinner`, an analysis error shown as a message (and None returned)."""
    from app.compute import AnalysisError

    try:
        return with_spinner(description, work)
    except AnalysisError as e:
        messages.error(str(e))
        return None


def saved_results(link: str | None) -> share.SavedView | None:
    """The shared analysis behind the view's link (already validated by ``state.bind``), or None."""
    if not link:
        return None
    try:
        return share.open_link(link)
    except share.LinkProblem as e:
        messages.error(str(e))
        return None


def provenance(saved: share.SavedView) -> None:
    """Say that the view shows a saved analysis, and whether its models have changed since."""
    st.caption(messages.escape(f"Shared analysis saved {saved.created_at}; the numbers are the saved ones."))
    for name, (then, now) in saved.changed_models().items():
        messages.warning(f"The model {name} has changed since this analysis was saved (checkpoint sha256 "
                         f"{then[:12] or 'unknown'}… then, {now[:12] or 'missing'}… now). The numbers shown are the "
                         "saved ones; change any setting to recompute with the current model.")
    with st.expander("Saved with"):
        st.text("\n".join(f"{k} {v}" for k, v in saved.versions.items()))
        st.text("\n".join(f"{k} checkpoint sha256 {v}" for k, v in saved.checkpoints.items()))


# --------------------------------------------------------------------------- results


def _fmt(value: float, digits: int = 6) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}g}"


def prediction(result: Any, i: int = 0) -> None:
    """Prediction (or target) and the model output being explained."""
    pred = int(result.predictions[i])
    target = int(result.targets[i])
    labels = result.labels
    cols = st.columns(3)
    cols[0].metric("Prediction", labels[pred] if 0 <= pred < len(labels) else "n/a")
    cols[1].metric("Explained", labels[target] if 0 <= target < len(labels) else str(target),
                   help=f"Target of the attribution: {result.target_label}")
    cols[2].metric("F(input)", _fmt(float(result.f_x[i])), help=result.target_label)


def completeness(result: Any, i: int = 0) -> None:
    """The completeness readout: Σ attributions vs F(x) − F(baseline), flagged above 5 %."""
    total = float(np.sum(result.attributions[i]))
    gap = float(result.f_x[i] - result.f_baseline[i])
    cols = st.columns(4)
    cols[0].metric("Σ attributions", _fmt(total))
    cols[1].metric("F(x) − F(baseline)", _fmt(gap))
    cols[2].metric("Convergence delta", _fmt(float(result.delta[i]), 3))
    rel = float(result.rel_error[i])
    cols[3].metric("Relative error", "n/a" if not np.isfinite(rel) else f"{rel:.2%}")
    if not np.isfinite(rel):
        st.caption("This method makes no completeness promise, so there is nothing to check.")
    elif bool(result.flagged[i]):
        messages.warning(f"Completeness is off by {rel:.1%} (more than 5%): the attributions do not add up to "
                         f"F(x) − F(baseline). {result.advice[i]}")
    else:
        st.caption(f"Completeness holds within {rel:.2%} (flagged above 5%).")


def attribution_heatmap(result: Any, *, vmax: float | None = None, title: str = "Attribution",
                        key: str = "attribution", i: int = 0) -> None:
    """The signed attribution over the input, with a save menu."""
    pixels = np.asarray(result.inputs[i]).reshape(28, 28)
    attr = np.asarray(result.attributions[i]).reshape(28, 28)
    charts.show_built(result, key, title, lambda: charts.attribution_chart(pixels, attr, vmax, title=title),
                      spec=lambda: charts.attribution_spec(pixels, attr, vmax, title=title),
                      variant=f"{i}:{vmax}:{title}")


def class_scores(result: Any, i: int = 0, key: str = "scores") -> None:
    """The class scores (or latent means) as bars, the prediction highlighted."""
    pred = int(result.predictions[i])
    charts.show_built(result, key, "Class scores", lambda: charts.scores_chart(
        result.labels, result.scores[i], pred if pred >= 0 else None, "score"), variant=str(i))


def curves(result: Any, i: int = 0, key: str = "curves") -> None:
    """Deletion and insertion curves with their areas, against random orderings."""
    left, right = st.columns(2)
    with left:
        charts.show_built(result, f"{key}-deletion", "Deletion curve", lambda: charts.curves_chart(
            result.fractions, {"deletion": result.deletion[i], "random deletion": result.random_deletion[i]},
            title=f"Deletion (AUC {result.deletion_auc[i]:.3f}, lower is better)"), variant=str(i))
    with right:
        charts.show_built(result, f"{key}-insertion", "Insertion curve", lambda: charts.curves_chart(
            result.fractions, {"insertion": result.insertion[i], "random insertion": result.random_insertion[i]},
            title=f"Insertion (AUC {result.insertion_auc[i]:.3f}, higher is better)"), variant=str(i))


def downloads(name: str, results: Mapping[str, Any], key: str, *, main: str | None = None,
              table: Any | None = None) -> None:
    """Download every result: JSON (summaries and metadata), CSV (``table``, else the summaries),
    NPY (the ``main`` array, else the first result's attributions) and NPZ (all arrays)."""
    import pandas as pd
    from analyzers import to_record

    record: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for part, result in results.items():
        meta, arr = to_record(result)
        record[part] = {"summary": result.summary(), "record": meta}
        arrays.update({f"{part}/{k}": v for k, v in arr.items()})
    if table is None:
        table = pd.DataFrame([{"part": part, **{k: (v[0] if isinstance(v, list) and len(v) == 1 else v)
                                                 for k, v in r["summary"].items()}} for part, r in record.items()])
    main = main or f"{next(iter(results), '')}/attributions"
    charts.download_buttons(name, record=record, arrays=arrays, main_array=main, table=table, key=key)


# --------------------------------------------------------------------------- sharing


def share_button(view: Any, *, title: str, inputs: Mapping[str, np.ndarray], results: Mapping[str, Any],
                 models: Sequence[str]) -> Any:
    """A Share button; on click, save everything in one transaction and show the link.

    Returns the view, with ``link`` set once it is saved (publish it so the URL shows the link).
    """
    from app.store import StoreError

    data = session.current()
    fingerprint = state._signature(dataclasses.replace(view, link=None).to_query())
    clicked = st.button("Share", icon=":material/share:", type="primary" if not view.link else "secondary",
                        help="Save this analysis and get a link that reopens it exactly")
    if clicked:
        link = data.shared.get(fingerprint)
        if link is None:
            try:
                with st.spinner("Saving…"):
                    link = share.save_view(view.PAGE, dataclasses.replace(view, link=None).to_query(), title=title,
                                           inputs=inputs, results=results, models=tuple(models))
            except StoreError as e:
                messages.error(str(e) if str(e).lower().startswith("not saved") else f"Not saved: {e}")
                return view
            except Exception as e:  # a bug or the machine: the analysis must stay on screen all the same
                _log.exception("saving a %s view failed", view.PAGE)
                messages.error(f"Not saved: the analysis could not be stored ({type(e).__name__}); the details are "
                               "in the server log. Your analysis is still on screen; try Share again.")
                return view
            data.shared[fingerprint] = link
        view = dataclasses.replace(view, link=link)
    if view.link:
        info = navigation.page_info(view.PAGE)
        url = share.link_url(st.context.url, info.url_path if info else view.PAGE, view.link)
        # A plain Markdown link, not st.code: the code block pulls in a 1.5 MB syntax highlighter that
        # a fresh browser opening the link would download before it draws the charts.
        with st.container(key="share-link"):
            st.markdown(f"[{messages.escape(url)}]({url.replace(')', '%29').replace(' ', '%20')})")
        st.caption("Anyone with this link sees exactly this analysis.")
    return view


# --------------------------------------------------------------------------- gallery


@dataclass(frozen=True)
class Curated:
    """A curated analysis on the Home page: a title, the page and its URL parameters, a thumbnail digit."""

    title: str
    page: str
    query: Mapping[str, str]
    sample: int


def gallery(items: Sequence[Curated], per_row: int = 4) -> None:
    """Thumbnails with one-click links that open each curated view through its URL parameters."""
    shown = [c for c in items if navigation.page_info(c.page) is not None]
    for start in range(0, len(shown), per_row):
        cols = st.columns(per_row)
        for col, item in zip(cols, shown[start:start + per_row]):
            with col.container(border=True):
                st.image(thumbnail(cache.sample_pixels(item.sample), 3), width=84)
                st.markdown(f"**{messages.escape(item.title)}**")
                st.page_link(str(navigation.page_file(item.page)), label="Open", query_params=dict(item.query),
                             icon=":material/open_in_new:")


def recent_shares(limit: int = 8) -> None:
    """The most recently shared analyses, newest first, each a link."""
    rows = share.recent(limit)
    if not rows:
        st.caption("Nothing shared yet. Use the Share button on any analysis.")
        return
    for row in rows:
        target = navigation.page_file(row.kind)
        if target is None:
            continue
        label = f"{row.title or row.kind} · {row.created_at:%Y-%m-%d %H:%M}"
        st.page_link(str(target), label=messages.escape(label), query_params={"id": row.id},
                     icon=":material/link:")


# --------------------------------------------------------------------------- model cards


def model_table() -> Any:
    """One row per zoo model: family, task, parameters, headline metrics, checkpoint state."""
    import pandas as pd
    from model_zoo import REGISTRY

    rows = []
    for name, spec in REGISTRY.items():
        metrics = ", ".join(f"{k} {v}" for k, v in spec.metrics.items())
        rows.append({"model": name, "family": spec.family, "task": spec.task,
                     "parameters": f"{cache.parameter_count(name):,}",
                     "metrics (held-out)": metrics or ("pretrained" if spec.recipe is None else "—"),
                     "checkpoint": "shipped" if spec.sha256 else ("pretrained package" if not spec.checkpoint
                                                                 else "not trained yet")})
    return pd.DataFrame(rows)


def _paper(text: str) -> None:
    words = text.rsplit(" ", 1)
    if len(words) == 2 and words[1].startswith("https://"):
        st.markdown(f"**Paper:** {messages.escape(words[0].rstrip(','))} — [{words[1]}]({words[1]})")
    else:
        st.markdown(f"**Paper:** {messages.escape(text)}")


def model_card(name: str) -> None:
    """The card of one model: description, paper, metrics, size, training and what analyses fit."""
    from analyzers import compatible
    from model_zoo import get_spec

    spec = get_spec(name)
    card = spec.card
    st.subheader(name)
    st.write(messages.escape(spec.description))
    _paper(spec.paper)
    metrics = dict(spec.metrics)
    cols = st.columns(max(2, len(metrics) + 2))
    for col, (k, v) in zip(cols, metrics.items()):
        col.metric(k, f"{v:.4g}" if isinstance(v, float) else str(v), help="on the held-out split")
    cols[len(metrics)].metric("Parameters", f"{cache.parameter_count(name):,}")
    path = spec.checkpoint_path
    size = f"{path.stat().st_size / 1e6:.2f} MB" if path is not None and path.exists() else "—"
    cols[len(metrics) + 1].metric("Checkpoint", size)
    left, right = st.columns(2)
    with left:
        st.caption("Training")
        recipe = card.get("recipe") or (dataclasses.asdict(spec.recipe) if spec.recipe else {})
        lines = [f"{k}: {v}" for k, v in recipe.items()]
        if "seconds" in card:
            lines.append(f"trained: {card.get('epochs', '?')} epochs in {card['seconds']} s with torch {card.get('torch', '?')}")
        if "split" in card:
            lines.append(f"split: {card['split']}")
        st.text("\n".join(lines) or "pretrained (not trained here)")
        st.caption("Input")
        st.text(f"{spec.input.modality}, {spec.input.normalisation}")
    with right:
        st.caption("Architecture")
        st.json(card.get("config") or dataclasses.asdict(spec.config), expanded=True)
        st.caption("Analyses that fit")
        st.text(", ".join(method_label(a) for a in compatible(spec)))
    st.caption("Checkpoint sha256")
    st.code(spec.sha256 or "none (pretrained package or not trained yet)", language=None)


# --------------------------------------------------------------------------- attribution runs


def labels_of(model: str) -> tuple[str, ...]:
    """What the target widget offers for a model: class labels, or latent means for a VAE."""
    return state.target_labels(model)


def curve_params_for(method: str, params: Any) -> Any:
    """Deletion/insertion params that match an attribution's method, baseline and target."""
    from analyzers import CurveParams, field_specs

    shared = {s.name for s in field_specs(CurveParams)} & {s.name for s in field_specs(type(params))}
    return CurveParams(attribution=method, **{k: getattr(params, k) for k in shared if k != "attribution"})


def attribution_only(model: str, method: str, params: Any, pixels: np.ndarray) -> Any | None:
    """The attribution of ``pixels`` (cached), under a spinner; None when it could not be computed."""
    from app import compute

    return computed(f"Computing {method_label(method)} on {model}…",
                    lambda: compute.run(method, model, params, pixels))


def attribution_curves(model: str, method: str, params: Any, pixels: np.ndarray, attribution: Any) -> Any | None:
    """Deletion/insertion curves for an attribution already computed (cached), under a spinner."""
    from app import compute

    curve_params = curve_params_for(method, params)
    return computed("Deletion and insertion curves…",
                    lambda: compute.run("deletion_insertion", model, curve_params, pixels,
                                        depends_on=compute.key_of(method, model, params, pixels),
                                        follow_up=True, attributions=attribution))


def attribution_with_curves(model: str, method: str, params: Any, pixels: np.ndarray) -> dict[str, Any] | None:
    """The attribution of ``pixels`` and its deletion/insertion curves, computed once and cached.

    Pages that can draw the attribution before the curves are ready use :func:`attribution_only`
    and :func:`attribution_curves` instead (the heatmap shows while the curves are computed).
    """
    attribution = attribution_only(model, method, params, pixels)
    if attribution is None:
        return None
    curves = attribution_curves(model, method, params, pixels, attribution)
    return {"attribution": attribution} if curves is None else {"attribution": attribution, "curves": curves}


# --------------------------------------------------------------------------- compare


def column_picker(keys: session.WidgetKeys, i: int, prior: state.Column, host: Any = st) -> state.Column:
    """Model and method of compare column ``i``, seeded from ``prior``."""
    models = state.attribution_models()
    model = host.selectbox(f"Model {i + 1}", models, key=keys.key(f"col{i}.model", prior.model, models))
    methods = state.attribution_methods(model)
    method = host.selectbox(f"Method {i + 1}", methods, key=keys.key(f"col{i}.method", prior.method, methods),
                            format_func=method_label)
    return state.Column(model, method)


def compare_results(columns: Sequence[state.Column], pixels: np.ndarray) -> dict[str, Any] | None:
    """Attributions for every column (default params of each method), or None if one failed."""
    from app import compute

    results = {}
    progress = st.progress(0.0, text="Computing the columns…")
    for i, c in enumerate(columns):
        params = state.params_class(c.method)()
        result = computed(f"{method_label(c.method)} on {c.model}…", lambda: compute.run(c.method, c.model, params, pixels))
        if result is None:
            progress.empty()
            return None
        results[f"col{i}"] = result
        progress.progress((i + 1) / len(columns), text=f"{i + 1} of {len(columns)} columns")
    progress.empty()
    return results


def compare_column(result: Any, column: state.Column, vmax: float, key: str) -> None:
    """One compare column: heatmap on the shared scale, prediction and completeness in brief."""
    attribution_heatmap(result, vmax=vmax, title=f"{method_label(column.method)} · {column.model}", key=key)
    pred = int(result.predictions[0])
    st.metric("Prediction", result.labels[pred] if 0 <= pred < len(result.labels) else "n/a")
    rel = float(result.rel_error[0])
    st.metric("Completeness error", "n/a" if not np.isfinite(rel) else f"{rel:.2%}",
              help="|Σ attributions − (F(x) − F(baseline))| / |F(x) − F(baseline)|; flagged above 5%")
    if bool(result.flagged[0]):
        messages.warning(result.advice[0] or "Completeness is off by more than 5%.")
