"""The chart builders: one colour scale for compared maps, tooltips everywhere, sizes kept, exports that render."""

from __future__ import annotations

import re

import numpy as np
import pytest

from app.charts import base as charts
from app.charts.attribution import attribution_chart
from app.charts.export import chart_png, chart_svg


def test_one_colour_scale_covers_every_column():
    a, b = np.array([[1.0, -3.0]]), np.array([[2.0, np.nan]])
    assert charts.symmetric_max([a, b]) == 3.0
    vlc = pytest.importorskip("vl_convert")

    def first_cell(value: float, vmax: float) -> tuple[str, str]:
        """Fill and opacity of the top-left cell, as Vega draws the chart."""
        chart = attribution_chart(np.zeros((28, 28)), np.full((28, 28), value), vmax=vmax)
        svg = vlc.vegalite_to_svg(chart.to_dict())
        return re.search(r'aria-label="col: 0; row: 0;[^>]*fill="([^"]+)" opacity="([^"]+)"', svg).groups()

    # The range comes from the chart's data (what lets a drawn chart be updated in place): the same
    # value on a scale three times as wide is paler, and a third of the range looks alike on both.
    assert first_cell(1.0, 3.0) == first_cell(3.0, 9.0)
    assert first_cell(1.0, 3.0) != first_cell(1.0, 1.0)


@pytest.mark.parametrize("chart", [
    charts.image_chart(np.zeros((28, 28))),
    attribution_chart(np.zeros((28, 28)), np.ones((28, 28))),
    charts.heatmap_chart(np.zeros((7, 7))),
    charts.scores_chart([str(i) for i in range(10)], np.arange(10.0), 3),
    charts.curves_chart(np.linspace(0, 1, 5), {"deletion": np.ones(5), "random deletion": np.zeros(5)}),
])
def test_every_chart_has_tooltips_and_keeps_its_size(chart):
    spec = chart.to_dict()
    layers = spec.get("layer", [spec])
    assert any("tooltip" in layer.get("encoding", {}) for layer in layers)
    assert spec["autosize"]["type"] == "pad"


def test_charts_export_as_svg_and_png_when_vl_convert_is_installed():
    pytest.importorskip("vl_convert", reason="vl-convert-python renders charts to SVG/PNG on the server")
    chart = attribution_chart(np.zeros((28, 28)), np.ones((28, 28)))
    assert chart_svg(chart).startswith(b"<svg")
    assert chart_png(chart).startswith(b"\x89PNG")
