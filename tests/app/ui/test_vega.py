"""Charts in Streamlit's wire format: the specs sent are what Streamlit would send, and in-place charts draw the same."""

from __future__ import annotations

import re

import numpy as np
import pytest

from app.charts import attention as ac
from app.charts.attribution import ATTRIBUTION_CELLS, ATTRIBUTION_PICTURE, attribution_chart
from app.ui.vega import attribution_spec, in_place, vega_spec


def test_the_fast_attribution_spec_is_what_streamlit_would_draw_for_the_chart():
    import pyarrow as pa

    rng = np.random.default_rng(3)
    pixels, attribution = rng.random((28, 28)), rng.normal(size=(28, 28))
    fast = attribution_spec(pixels, attribution, 2.5, title="IG on vit-dot")
    slow = vega_spec(attribution_chart(pixels, attribution, 2.5, title="IG on vit-dot"))
    assert {k: v for k, v in fast.items() if k != "datasets"} == {k: v for k, v in slow.items() if k != "datasets"}
    assert fast["datasets"].keys() == slow["datasets"].keys() == {ATTRIBUTION_PICTURE, ATTRIBUTION_CELLS}

    def table(data: bytes | list):  # Streamlit turns a list of records into Arrow when it sends the chart
        import pandas as pd

        if isinstance(data, list):
            return pd.DataFrame.from_records(data)
        return pa.ipc.open_stream(data).read_all().to_pandas().reset_index(drop=True)

    for name in fast["datasets"]:
        fast_table, slow_table = table(fast["datasets"][name]), table(slow["datasets"][name])
        assert list(fast_table.columns) == list(slow_table.columns)
        assert np.array_equal(fast_table.to_numpy(), slow_table.to_numpy())
    cells = table(fast["datasets"][ATTRIBUTION_CELLS])
    assert np.allclose(cells["attribution"], attribution.ravel()) and (cells["vmax"] == 2.5).all()
    # Another map: only the data differs, so Streamlit updates the drawn chart instead of making a new one.
    other = attribution_spec(pixels, -attribution, None, title="IG on vit-dot")
    assert {k: v for k, v in other.items() if k != "datasets"} == {k: v for k, v in fast.items() if k != "datasets"}
    assert other["datasets"][ATTRIBUTION_CELLS] != fast["datasets"][ATTRIBUTION_CELLS]


def _inline(spec: dict) -> dict:
    """A spec from Streamlit's converter with its Arrow datasets as records (what vl-convert reads)."""
    import pyarrow as pa

    rows = {k: pa.ipc.open_stream(v).read_pandas().astype(object).to_dict("records") for k, v in spec["datasets"].items()}
    return {**spec, "datasets": rows}


def _svg(spec: dict) -> str:
    vlc = pytest.importorskip("vl_convert")
    return re.sub(r"gradient_\d+", "gradient", vlc.vegalite_to_svg(spec))


@pytest.mark.parametrize("make", [
    lambda heat, title: ac.attention_map_chart(heat[:10, :10] / heat[:10, :10].sum(1, keepdims=True),
                                               ac.token_labels(10), title),
    lambda heat, title: ac.overlay_chart(np.linspace(0, 1, 784).reshape(28, 28), heat, title),
])
def test_charts_drawn_in_place_differ_in_data_only_and_draw_what_the_chart_draws(make):
    rng = np.random.default_rng(5)
    one, two = make(rng.random((28, 28)), "Layer 0, head 1"), make(rng.random((28, 28)) ** 3, "Layer 3, head 2")
    a, b = (in_place(vega_spec(c), "head-map") for c in (one, two))
    assert {k: v for k, v in a.items() if k != "datasets"} == {k: v for k, v in b.items() if k != "datasets"}
    assert all(name.startswith("head-map-") for name in a["datasets"]) and a["datasets"] != b["datasets"]
    for chart, spec, title in ((one, a, "Layer 0, head 1"), (two, b, "Layer 3, head 2")):
        drawn = _svg(_inline(spec))
        assert title in drawn and drawn == _svg(chart.to_dict())  # the title, colours and scales of the chart


def test_vega_spec_is_what_streamlit_sends_without_validating_again():
    from streamlit.elements import vega_charts

    chart = attribution_chart(np.zeros((28, 28)), np.linspace(-1, 1, 784).reshape(28, 28))
    spec = vega_spec(chart)
    assert spec == vega_charts._convert_altair_to_vega_lite_spec(chart)
    assert spec["usermeta"]["embedOptions"]["renderer"] == "canvas"
    assert "to_dict" not in vars(chart), "the chart validates as before once converted"

    import altair as alt
    import pandas as pd

    from altair.utils.schemapi import debug_mode

    with debug_mode(False):  # a chart with a mistake the schema check would catch
        broken = alt.Chart(pd.DataFrame({"a": [1]}), width="very wide").mark_point().encode(x="a:Q")
    assert vega_spec(broken) is not None, "the spec is made without the schema check"
    with pytest.raises(Exception, match="width"):
        broken.to_dict()
