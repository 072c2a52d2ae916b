"""Figures and results as files: Vega-Lite JSON, SVG and PNG of a chart, NPY and NPZ of arrays, CSV of its data.

No Streamlit: the Save and Download menus (``app.ui.figures``) call these when a file is asked for.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from typing import Any

import altair as alt
import numpy as np
import pandas as pd


def slug(name: str) -> str:
    """A file-name-safe form of ``name``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "chart"


def vl_convert() -> Any | None:
    """The vl-convert module that renders Vega-Lite to SVG/PNG on the server, or None when it is not installed."""
    try:
        import vl_convert  # optional: renders Vega-Lite to SVG/PNG on the server
    except ImportError:
        return None
    return vl_convert


def chart_json(chart: alt.TopLevelMixin) -> str:
    """The chart's Vega-Lite spec with its data inline, however many rows (Altair's 5,000-row guard lifted)."""
    with alt.data_transformers.disable_max_rows():
        return chart.to_json()


def chart_svg(chart: alt.TopLevelMixin) -> bytes:
    """The chart as SVG, however many rows its data has (needs vl-convert-python)."""
    with alt.data_transformers.disable_max_rows():
        return vl_convert().vegalite_to_svg(chart.to_dict()).encode()


def chart_png(chart: alt.TopLevelMixin) -> bytes:
    """The chart as PNG at 2x scale, however many rows its data has (needs vl-convert-python)."""
    with alt.data_transformers.disable_max_rows():
        return vl_convert().vegalite_to_png(chart.to_dict(), scale=2)


def chart_data(chart: alt.TopLevelMixin) -> pd.DataFrame | None:
    """The chart's table for the CSV download: its own data, else its largest layer's or named dataset's
    (not a picture's)."""
    data = getattr(chart, "data", None)
    if isinstance(data, pd.DataFrame):
        return data
    frames = [layer.data for layer in getattr(chart, "layer", []) or [] if isinstance(getattr(layer, "data", None), pd.DataFrame)]
    named = getattr(chart, "datasets", None)
    if isinstance(named, dict):
        frames += [pd.DataFrame.from_records(rows) for rows in named.values() if isinstance(rows, list) and len(rows) > 1]
    return max(frames, key=len) if frames else None


def npy_bytes(array: np.ndarray) -> bytes:
    """One array as .npy bytes (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def npz_bytes(arrays: Mapping[str, np.ndarray], record: Mapping[str, Any] | None = None) -> bytes:
    """Several arrays as .npz bytes (names with "/" become "__"); ``record``, if given, rides along as the JSON
    text of a ``__meta__`` array (no pickle: ``np.load(..., allow_pickle=False)`` reads it)."""
    buf = io.BytesIO()
    meta = {"__meta__": np.array(record_json(record))} if record is not None else {}
    np.savez_compressed(buf, **meta, **{k.replace("/", "__"): np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def record_json(record: Mapping[str, Any]) -> str:
    """A results record (summaries and metadata) as indented JSON; numpy values as plain numbers and lists."""
    return json.dumps(record, indent=2, default=_json_default)
