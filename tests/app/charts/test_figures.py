"""The figures of the analysis pages: valid Vega-Lite with tooltips, legends that stay gradients, big charts export."""

from __future__ import annotations

import altair as alt
import numpy as np
import pytest

from app.charts import attention as ac
from app.charts.attribution import attribution_chart
from app.charts.capsules import routing_grid_chart, routing_types_chart
from app.charts.export import chart_json, chart_png, chart_svg
from app.charts.images import mosaic
from app.charts.latent import kl_chart, scatter_chart


def _valid(chart) -> dict:
    with alt.data_transformers.disable_max_rows():
        return chart.to_dict(validate=True)


def test_chart_builders_make_valid_vega_lite_with_tooltips():
    rng = np.random.default_rng(0)
    attn = rng.random((50, 50))
    labels = ac.token_labels(50)
    assert labels[0] == "CLS" and labels[-1] == "patch (6, 6)"
    built = [
        ac.attention_map_chart(attn, labels),
        ac.head_grid_chart(rng.random((2, 3, 7, 7)), selected=(1, 2)),
        ac.facet_maps_chart({"a": attn, "b": attn}, labels, 1.0),
        ac.overlay_chart(rng.random((28, 28)), rng.random((28, 28))),
        ac.head_stat_chart({"a": rng.random((2, 3))}, "dependence"),
        ac.mix_weights_chart(rng.random((2, 3, 2))),
        ac.token_attribution_chart({"A": (["[CLS]", "<script>", "ok"], np.array([0.0, 1.0, -1.0])),
                                    "B": (["x"], np.array([0.5]))}),
        scatter_chart(rng.normal(size=(20, 2)), np.arange(20) % 10, marked=[3]),
        kl_chart(rng.random(4), rng.random(4), np.array([True, False, True, True]), 0.01),
        routing_grid_chart(rng.random((3, 6, 6))),
        routing_types_chart(rng.random((3, 16, 10)), [str(i) for i in range(10)]),
    ]
    for chart in built:
        assert "tooltip" in str(_valid(chart))


def test_heat_over_a_digit_keeps_a_colour_gradient_legend():
    vlc = pytest.importorskip("vl_convert")
    rng = np.random.default_rng(1)
    for chart in (ac.overlay_chart(rng.random((28, 28)), rng.random((28, 28))),
                  attribution_chart(rng.random((28, 28)), rng.normal(size=(28, 28)))):
        legends = vlc.vegalite_to_vega(_valid(chart))["legends"]
        assert len(legends) == 1 and "opacity" not in legends[0], "opacity merged in: the legend became symbols"


def test_big_charts_export_as_json_svg_and_png():
    grid = ac.head_grid_chart(np.random.default_rng(0).random((4, 4, 7, 7)), pixels=np.zeros((28, 28)))
    assert len(grid.data) > 5000, "more rows than Altair's default guard allows"
    assert '"layer"' in chart_json(grid)
    pytest.importorskip("vl_convert")
    assert chart_svg(grid).lstrip().startswith(b"<svg")
    assert chart_png(grid)[:8] == b"\x89PNG\r\n\x1a\n"


def test_token_layout_wraps_long_sentences_and_keeps_order():
    frame = ac.token_attribution_frame(["word"] * 30, np.linspace(-1, 1, 30), per_line=40)
    assert frame["line"].max() >= 2
    assert list(frame["index"]) == list(range(30))
    assert (frame.groupby("line")["x"].apply(lambda x: x.is_monotonic_increasing)).all()


def test_mosaic_places_every_image_with_a_border():
    images = np.zeros((2, 3, 28, 28), dtype=np.float32)
    images[1, 2] = 1.0
    out = mosaic(images, pad=2, scale=1)
    assert out.shape == (2 * 28 + 3 * 2, 3 * 28 + 4 * 2) and out.dtype == np.uint8
    assert out[2 + 28 + 2:, 2 + 2 * 30:][:28, :28].min() == 255 and out[2:30, 2:30].max() == 0
