"""Charts in Streamlit's wire format: the Vega-Lite spec ``st.altair_chart`` would send, made once and reused.

Sending a spec made earlier skips building, validating and converting the chart again on every
run; :func:`in_place` makes charts of one layout differ in their data only, so the browser
updates the chart already drawn instead of building a new Vega view.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import pyarrow as pa
from streamlit import dataframe_util
from streamlit.elements import vega_charts

from app.charts.attribution import attribution_datasets, attribution_layout
from app.charts.base import IMAGE_SIZE


def vega_spec(chart: alt.TopLevelMixin) -> dict[str, Any] | None:
    """The chart as the Vega-Lite spec ``st.altair_chart`` sends (data as Arrow), or None.

    Uses Streamlit's own converter, so the spec is what ``st.altair_chart`` would send, except
    that the finished spec is not checked against the Vega-Lite JSON schema again: that check
    costs more than building the chart, and every builder's output is validated by the tests.
    Cell charts draw on one canvas instead of thousands of SVG nodes. None when this Streamlit
    has no such converter (then charts are drawn the ordinary way).
    """
    convert = getattr(vega_charts, "_convert_altair_to_vega_lite_spec", None)
    if convert is None:
        return None
    # Streamlit calls ``chart.to_dict()``; for this one conversion that means to_dict(validate=False).
    vars(chart)["to_dict"] = functools.partial(type(chart).to_dict, chart, validate=False)
    try:
        spec = convert(chart)
    except Exception:  # noqa: BLE001 - a changed private API only costs speed: draw the ordinary way
        return None
    finally:
        vars(chart).pop("to_dict", None)
    spec.setdefault("usermeta", {}).setdefault("embedOptions", {}).setdefault("renderer", "canvas")
    return spec


_VIEW_LISTS = ("layer", "hconcat", "vconcat", "concat")  # keys whose lists hold views


def in_place(spec: dict[str, Any], slot: str) -> dict[str, Any]:
    """``spec`` (from :func:`vega_spec`) made so that Streamlit can draw it by updating the chart before it.

    Streamlit builds a new Vega view whenever a chart's spec differs from the one drawn in its place
    and only updates the data when the spec is the same; Altair names every dataset after a hash of
    its data, and titles are text in the spec. Here the datasets are named ``<slot>-0``,
    ``<slot>-1``, ... in order, and each view title is read by a Vega expression from a column of
    its data (``_title0``, ...; one dictionary-coded value): two charts of one layout then differ
    in their data only. (Scale domains written into the spec still differ: such charts leave them
    to the data.)
    """
    names = {old: f"{slot}-{i}" for i, old in enumerate(spec.get("datasets", {}))}
    titled: list[tuple[dict[str, Any], str | None, str]] = []  # (view, its data or None, title text)

    def view(node: dict[str, Any], inherited: str | None) -> dict[str, Any]:
        out = dict(node)
        data = out.get("data")
        if isinstance(data, dict) and data.get("name") in names:
            out["data"] = {**data, "name": names[data["name"]]}
        own = out["data"]["name"] if isinstance(out.get("data"), dict) and "name" in out["data"] else inherited
        title = out.get("title")
        text = title.get("text") if isinstance(title, dict) else title
        if isinstance(text, str) and text:
            titled.append((out, own, text))
        for key in _VIEW_LISTS:
            if isinstance(out.get(key), list):
                out[key] = [view(v, own) if isinstance(v, dict) else v for v in out[key]]
        if isinstance(out.get("spec"), dict):  # facet and repeat
            out["spec"] = view(out["spec"], own)
        return out

    top = view({k: v for k, v in spec.items() if k != "datasets"}, None)
    datasets = {names[old]: data for old, data in spec.get("datasets", {}).items()}
    columns: dict[str, dict[str, str]] = {}
    for i, (node, data_name, text) in enumerate(titled):
        data_name = data_name or next(iter(datasets), None)
        if data_name is None or not isinstance(datasets[data_name], bytes):
            continue  # nothing to carry the title: it stays text
        columns.setdefault(data_name, {})[f"_title{i}"] = text
        title = node["title"]
        expr = {"expr": f"data('{data_name}')[0]._title{i}"}
        node["title"] = {**title, "text": expr} if isinstance(title, dict) else {"text": expr}
    for data_name, extra in columns.items():
        frame = pa.ipc.open_stream(datasets[data_name]).read_pandas()
        for column, text in extra.items():
            frame[column] = pd.Categorical([text] * len(frame))
        datasets[data_name] = dataframe_util.convert_anything_to_arrow_bytes(frame)
    return {**top, "datasets": datasets}


def attribution_spec(pixels: np.ndarray, attribution: np.ndarray, vmax: float | None = None,
                     title: str = "Attribution", size: int = IMAGE_SIZE) -> dict[str, Any] | None:
    """What ``st.vega_lite_chart`` draws for :func:`attribution_chart` with the same arguments, in about
    5 ms instead of 20: the layout is converted once per title, size and shape, and only the data is
    new (as Arrow). None when this Streamlit has no converter (draw the chart instead)."""
    layout = _attribution_layout_spec(title, size, tuple(np.shape(pixels)))
    if layout is None:
        return None
    spec = copy.deepcopy(layout)
    spec["datasets"] = {name: dataframe_util.convert_anything_to_arrow_bytes(frame) for name, frame in
                        attribution_datasets(pixels, attribution, vmax).items()}
    return spec


@functools.lru_cache(maxsize=32)
def _attribution_layout_spec(title: str, size: int, shape: tuple[int, ...]) -> dict[str, Any] | None:
    return vega_spec(attribution_layout(title, size, shape))
