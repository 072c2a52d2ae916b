"""Sharing and exporting what a page shows: the Share button, and the "Download results" menu.

Share saves the view, its input and its results in one store transaction and shows the link;
the link reopens exactly this analysis (``app.links.binding``). A share is listed only on the
Home page of the browser that made it, until that browser publishes it to the gallery (when the
server has one, ``ZOOSCOPE_GALLERY``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from analyzers import ANALYZERS, ParamError, params_from_mapping, to_record
from app import navigation
from app.links.codec import InputRef, signature
from app.runtime import share
from app.runtime.models import heldout_split
from app.runtime.store import StoreError
from app.ui import messages, session
from app.ui.figures import download_buttons
from app.ui.results import visitor
from model_zoo import all_models

_log = logging.getLogger(__name__)
_PUBLISH_PROBLEM = "zooscope.publish_problem"  # session-state key: why the last Publish click failed
_UPLOAD_KEYS = ("upload", "upload_b")  # URL keys that name a visitor's own upload
_TEXT_KEYS = ("a", "b", "text", "text_b")  # URL keys that hold a visitor's own text


def share_button(view: Any, *, title: str, inputs: Mapping[str, np.ndarray], results: Mapping[str, Any],
                 models: Sequence[str]) -> Any:
    """A Share button; on click, save everything in one transaction and show the link.

    A new share is refused with a message, the analysis staying on screen, when this session has
    made ``ZOOSCOPE_SHARES_PER_HOUR`` in the last hour or the store is at its size budget; sharing
    a view the session has already shared shows its link again and does not count.

    Returns the view, with ``link`` set once it is saved (publish it so the URL shows the link).
    """
    data = session.current()
    fingerprint = signature(dataclasses.replace(view, link=None).to_query())
    clicked = st.button("Share", icon=":material/share:", type="primary" if not view.link else "secondary",
                        help="Save this analysis and get a link that reopens it exactly")
    if clicked:
        link = data.shared.get(fingerprint)
        if link is None:
            try:
                data.share_limit.check(share.shares_per_hour())
                with st.spinner("Saving…"):
                    link = share.save_view(view.PAGE, dataclasses.replace(view, link=None).to_query(), title=title,
                                           inputs={**inputs, **_upload_preview(view, data)}, results=results,
                                           models=tuple(models), owner=visitor())
            except share.SharingTooFast as e:
                messages.error(str(e))
                return view
            except StoreError as e:
                messages.error(str(e) if str(e).lower().startswith("not saved") else f"Not saved: {e}")
                return view
            except Exception as e:  # a bug or the machine: the analysis must stay on screen all the same
                _log.exception("saving a %s view failed", view.PAGE)
                messages.error(f"Not saved: the analysis could not be stored ({type(e).__name__}); the details are "
                               "in the server log. Your analysis is still on screen; try Share again.")
                return view
            data.share_limit.record()
            data.shared[fingerprint] = link
        view = dataclasses.replace(view, link=link)
    if view.link:
        info = navigation.page_info(view.PAGE)
        url = share.link_url(st.context.url, info.url_path if info else view.PAGE, view.link)
        # A plain Markdown link, not st.code: the code block pulls in a 1.5 MB syntax highlighter that
        # a fresh browser opening the link would download before it draws the charts.
        with st.container(key="share-link"):
            st.markdown(f"[{messages.escape(url)}]({url.replace(')', '%29').replace(' ', '%20')})")
        mine, has_gallery = _shared_here(view.link, data), share.gallery_on()
        st.caption("Anyone with this link sees exactly this analysis." + (
            "" if not mine else " Home lists it for you alone" + (", unless you publish it." if has_gallery else ".")))
        if mine and has_gallery:
            gallery_controls(view.link, dataclasses.replace(view, link=None).to_query())
    return view


def _shared_here(link: str, data: session.SessionData) -> bool:
    """Whether this browser made the share ``link`` (this session, or another tab of the same browser)."""
    if link in data.shared.values():
        return True
    try:
        owner = share.open_link(link).owner  # read once per process, then from memory
    except share.LinkProblem:
        return False
    return bool(owner) and owner == visitor()


def gallery_controls(link: str, query: Mapping[str, str]) -> None:
    """Publish this browser's share to the gallery on Home, or withdraw it; say what everyone will see."""
    problem = st.session_state.pop(_PUBLISH_PROBLEM, None)
    if problem:
        messages.error(problem)
    own = _own_input(query)
    if share.is_published(link):
        st.caption(":material/public: Published: anyone who opens this app sees it on Home, under "
                   f"“Published by visitors”{f', with {own}' if own else ''}.")
        st.button("Remove from the gallery", icon=":material/public_off:", on_click=_publish, args=(link, False),
                  help="Home stops listing it for everyone; the link keeps working for anyone who has it")
        return
    if own:
        st.caption(f":material/warning: This share holds {own}: publishing it shows {own} to everyone who opens "
                   "this app.")
    st.button("Publish to the gallery", icon=":material/public:", on_click=_publish, args=(link, True),
              help="Anyone who opens this app will see this analysis listed on Home and can open it"
                   + (f", {own} included" if own else ""))


def _own_input(query: Mapping[str, str]) -> str:
    """What of the person's own a share holds, in words ("the image you uploaded"); "" for held-out digits."""
    if any(key in query for key in _UPLOAD_KEYS):
        return "the image you uploaded"
    if any(key in query for key in _TEXT_KEYS):
        return "the sentences you analysed"
    return ""


def _publish(link: str, published: bool) -> None:
    """The Publish (or Remove) button's callback: runs before the page is drawn, so the page shows the new state."""
    try:
        share.publish(link, visitor(), published=published)
    except share.NotPublished as e:
        st.session_state[_PUBLISH_PROBLEM] = str(e)


def _upload_preview(view: Any, data: Any) -> dict[str, np.ndarray]:
    """The uploaded image as the person saw it (a bounded preview), saved beside the 28 x 28 digit a view analysed."""
    ref = getattr(view, "input", None)
    decoded = data.uploads.get(ref.upload) if ref is not None and ref.upload else None
    return {"preview": np.asarray(decoded.display, dtype=np.float32)} if decoded is not None else {}


def downloads(name: str, results: Mapping[str, Any], key: str, *, main: str | None = None,
              table: Any | None = None, source: Mapping[str, Any] | None = None) -> None:
    """Download every result: JSON (summaries, metadata and provenance), CSV (``table``, else the summaries),
    NPY (the ``main`` array, else the first result's attributions) and NPZ (all arrays, the JSON inside).

    ``source`` says what was analysed (:func:`input_identity`); the provenance adds each model's checkpoint
    sha256, every analysis's parameters as typed values and the zooscope version.
    """
    record: dict[str, Any] = {"provenance": provenance(results, source)}
    arrays: dict[str, np.ndarray] = {}
    for part, result in results.items():
        meta, arr = to_record(result)
        record[part] = {"summary": result.summary(), "record": meta}
        arrays.update({f"{part}/{k}": v for k, v in arr.items()})
    if table is None:
        table = pd.DataFrame([{"part": part, **{k: (v[0] if isinstance(v, list) and len(v) == 1 else v)
                                                for k, v in r["summary"].items()}}
                              for part, r in record.items() if part != "provenance"])
    main = main or f"{next(iter(results), '')}/attributions"
    download_buttons(name, record=record, arrays=arrays, main_array=main, table=table, key=key)


def input_identity(ref: InputRef | None = None, texts: Sequence[str] = ()) -> dict[str, Any]:
    """What was analysed, for an export: the held-out digit's index in its split, the upload's sha256, or the texts."""
    if texts:
        return {"sentences": list(texts)}
    if ref is None:
        return {}
    if ref.upload:
        return {"upload_sha256": ref.upload}
    return {"held_out_index": ref.sample, "split": heldout_split().name}


def provenance(results: Mapping[str, Any], source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Where exported numbers come from: zooscope's version, each model's checkpoint, the input, the typed params."""
    models: dict[str, str] = {}
    params: dict[str, Any] = {}
    for part, result in results.items():
        info = getattr(result, "info", None)
        if info is None:
            continue
        spec = all_models().get(info.model)  # the zoo, the user's folders and plugins
        models[info.model] = spec.sha256 if spec is not None else ""
        params[part] = {"analyzer": info.analyzer, "params": _typed(info.analyzer, info.params)}
    return {"zooscope": share.library_versions()["zooscope"], "models": models, "input": dict(source or {}),
            "analyses": params}


def _typed(analyzer: str, params: Mapping[str, str]) -> dict[str, Any]:
    """Canonical params (text) as the numbers, booleans and words they stand for."""
    entry = ANALYZERS.get(analyzer)
    try:
        return dataclasses.asdict(params_from_mapping(entry.params, dict(params))) if entry else dict(params)
    except ParamError:
        return dict(params)
