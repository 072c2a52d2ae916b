"""Share-link state: URL parameters to typed views and back, validated against allow-lists."""

from __future__ import annotations

import re

import numpy as np
import pytest

from app import charts, messages, share, state
from app import explore_charts as ec
from app.state import AttributionView, Column, CompareView, InputRef, LinkView, ModelsView


def q(**kw: str | list[str]) -> dict[str, list[str]]:
    """A query as Streamlit gives it: every key with a list of values."""
    return {k.replace("__", "."): v if isinstance(v, list) else [v] for k, v in kw.items()}


def test_the_documented_example_url_parses_cleanly():
    view, problems = AttributionView.from_query(
        q(model="vit-dot", method="integrated_gradients", sample="17", n_steps="64"))
    assert problems == ()
    assert (view.model, view.method, view.input, view.link) == ("vit-dot", "integrated_gradients", InputRef(17), None)
    assert view.params_object().n_steps == 64


@pytest.mark.parametrize("view", [
    AttributionView(),
    AttributionView("vit-dot", "saliency", state.default_params("saliency"), InputRef(999)),
    AttributionView(params=(("n_steps", "16"), *state.default_params("integrated_gradients")[1:]), input=InputRef(3)),
    CompareView(),
    CompareView((Column("vit-dot", "occlusion"), Column("capsnet", "integrated_gradients")), InputRef(42)),
    ModelsView("capsnet"),
])
def test_views_round_trip_through_the_url(view):
    back, problems = type(view).from_query(q(**view.to_query()))
    assert problems == ()
    assert back == view


def test_changed_params_only_are_written_and_reserved_names_are_prefixed():
    params = AttributionView().params_object().replace(n_steps=16, method="riemann_left")
    view = AttributionView(params=state.canonical(params), input=InputRef(5))
    query = view.to_query()
    assert query == {"model": "vit-dot", "method": "integrated_gradients", "sample": "5", "n_steps": "16",
                     "param.method": "riemann_left"}
    assert AttributionView.from_query(q(**{k.replace(".", "__"): v for k, v in query.items()}))[0] == view


@pytest.mark.parametrize("bad", ["-1", "0", "1e9", "nan", "5.5", "abc", ""])
def test_bad_n_steps_gives_a_message_and_keeps_the_default(bad):
    view, problems = AttributionView.from_query(q(model="vit-dot", method="integrated_gradients", n_steps=bad))
    assert len(problems) == 1 and "n_steps" in problems[0]
    assert view.params_object().n_steps == 64


def test_unknown_model_method_and_keys_each_get_a_message():
    view, problems = AttributionView.from_query(q(model="resnet-9000", method="magic", sample="3", foo="1"))
    assert view.model == state.DEFAULT_MODEL and view.method == state.DEFAULT_METHOD
    assert view.input.sample == 3
    text = " ".join(problems)
    assert "resnet-9000" in text and "magic" in text and "'foo'" in text


def test_an_analyzer_that_is_not_an_attribution_method_is_refused():
    view, problems = AttributionView.from_query(q(model="vit-dot", method="attention_maps"))
    assert view.method == state.DEFAULT_METHOD and "attention_maps" in problems[0]


def test_text_models_are_not_offered_for_pixel_attribution():
    assert "minilm" not in state.attribution_models()
    assert "vit-dot" in state.attribution_models()


@pytest.mark.parametrize("sample", ["-1", "1000", "17.5", "1" * 40, "0x10"])
def test_sample_out_of_range_or_not_a_number(sample):
    view, problems = AttributionView.from_query(q(sample=sample))
    assert view.input.sample == state.DEFAULT_SAMPLE and len(problems) == 1


def test_repeated_keys_are_reported_not_guessed():
    view, problems = AttributionView.from_query(q(model=["vit-dot", "capsnet"], n_steps=["8", "16"]))
    assert view.model == state.DEFAULT_MODEL and view.params_object().n_steps == 64
    assert sum("appears 2 times" in p for p in problems) == 2


def test_overlong_values_are_cut_short_in_messages():
    _, problems = AttributionView.from_query(q(model="x" * 10_000))
    assert len(problems[0]) < 300


@pytest.mark.parametrize("link", ["short", "A" * 23, "../../etc/passwd0000000", "'; DROP TABLE x;--aaaaa", "A" * 21 + "!"])
def test_malformed_ids_are_rejected_before_any_lookup(link):
    view, problems = AttributionView.from_query(q(id=link))
    assert view.link is None and "not a zooscope link id" in problems[0]


def test_a_well_formed_id_is_the_whole_view():
    view, problems = AttributionView.from_query(q(id="A" * 22, model="capsnet"))
    assert view.link == "A" * 22 and problems == ()
    assert view.to_query() == {"id": "A" * 22}
    assert LinkView.from_query(q(id="B" * 22))[0].link == "B" * 22


def test_uploads_are_only_accepted_when_the_session_has_them():
    sha = "ab" * 32
    view, problems = AttributionView.from_query(q(upload=sha), uploads={sha})
    assert view.input == InputRef(0, sha) and problems == ()
    view, problems = AttributionView.from_query(q(upload=sha))
    assert view.input.upload is None and "uploaded image" in problems[0]


@pytest.mark.parametrize("columns", ["vit-dot:saliency", "a:b,c:d", "vit-dot:saliency," * 5, "vit-dot:nope,vit-dot:saliency"])
def test_bad_compare_columns_fall_back_to_the_defaults(columns):
    view, problems = CompareView.from_query(q(columns=columns))
    assert view.columns == state.DEFAULT_COLUMNS and len(problems) == 1


def test_messages_disarm_markdown_and_html():
    text = "[click](javascript:alert(1)) <b>x</b> :red[y] $x$ **z**"
    escaped = messages.escape(text)
    for token in ("[", "]", "(", "<", ":", "$", "*"):
        assert all(escaped[i - 1] == "\\" for i, ch in enumerate(escaped) if ch == token)


@pytest.mark.parametrize("base, page, expected", [
    (None, "attribution", "/attribution?id=X"),
    ("http://127.0.0.1:8501/attribution", "attribution", "http://127.0.0.1:8501/attribution?id=X"),
    ("http://127.0.0.1:8501/", "attribution", "http://127.0.0.1:8501/attribution?id=X"),
    ("https://host/zoo/compare", "compare", "https://host/zoo/compare?id=X"),
    ("http://h:1/", "", "http://h:1/?id=X"),
])
def test_share_urls_carry_the_page_path_and_the_id(base, page, expected):
    assert share.link_url(base, page, "X") == expected


def test_one_colour_scale_covers_every_column():
    a, b = np.array([[1.0, -3.0]]), np.array([[2.0, np.nan]])
    assert charts.symmetric_max([a, b]) == 3.0
    vlc = pytest.importorskip("vl_convert")

    def first_cell(value: float, vmax: float) -> tuple[str, str]:
        """Fill and opacity of the top-left cell, as Vega draws the chart."""
        chart = charts.attribution_chart(np.zeros((28, 28)), np.full((28, 28), value), vmax=vmax)
        svg = vlc.vegalite_to_svg(chart.to_dict())
        return re.search(r'aria-label="col: 0; row: 0;[^>]*fill="([^"]+)" opacity="([^"]+)"', svg).groups()

    # The range comes from the chart's data (what lets a drawn chart be updated in place): the same
    # value on a scale three times as wide is paler, and a third of the range looks alike on both.
    assert first_cell(1.0, 3.0) == first_cell(3.0, 9.0)
    assert first_cell(1.0, 3.0) != first_cell(1.0, 1.0)


def test_the_fast_attribution_spec_is_what_streamlit_would_draw_for_the_chart():
    import pyarrow as pa

    rng = np.random.default_rng(3)
    pixels, attribution = rng.random((28, 28)), rng.normal(size=(28, 28))
    fast = charts.attribution_spec(pixels, attribution, 2.5, title="IG on vit-dot")
    slow = charts.vega_spec(charts.attribution_chart(pixels, attribution, 2.5, title="IG on vit-dot"))
    assert {k: v for k, v in fast.items() if k != "datasets"} == {k: v for k, v in slow.items() if k != "datasets"}
    assert fast["datasets"].keys() == slow["datasets"].keys() == {charts.ATTRIBUTION_PICTURE, charts.ATTRIBUTION_CELLS}

    def table(data: bytes | list):  # Streamlit turns a list of records into Arrow when it sends the chart
        import pandas as pd

        if isinstance(data, list):
            return pd.DataFrame.from_records(data)
        return pa.ipc.open_stream(data).read_all().to_pandas().reset_index(drop=True)

    for name in fast["datasets"]:
        fast_table, slow_table = table(fast["datasets"][name]), table(slow["datasets"][name])
        assert list(fast_table.columns) == list(slow_table.columns)
        assert np.array_equal(fast_table.to_numpy(), slow_table.to_numpy())
    cells = table(fast["datasets"][charts.ATTRIBUTION_CELLS])
    assert np.allclose(cells["attribution"], attribution.ravel()) and (cells["vmax"] == 2.5).all()
    # Another map: only the data differs, so Streamlit updates the drawn chart instead of making a new one.
    other = charts.attribution_spec(pixels, -attribution, None, title="IG on vit-dot")
    assert {k: v for k, v in other.items() if k != "datasets"} == {k: v for k, v in fast.items() if k != "datasets"}
    assert other["datasets"][charts.ATTRIBUTION_CELLS] != fast["datasets"][charts.ATTRIBUTION_CELLS]


def _inline(spec: dict) -> dict:
    """A spec from Streamlit's converter with its Arrow datasets as records (what vl-convert reads)."""
    import pyarrow as pa

    rows = {k: pa.ipc.open_stream(v).read_pandas().astype(object).to_dict("records") for k, v in spec["datasets"].items()}
    return {**spec, "datasets": rows}


def _svg(spec: dict) -> str:
    vlc = pytest.importorskip("vl_convert")
    return re.sub(r"gradient_\d+", "gradient", vlc.vegalite_to_svg(spec))


@pytest.mark.parametrize("make", [
    lambda heat, title: ec.attention_map_chart(heat[:10, :10] / heat[:10, :10].sum(1, keepdims=True),
                                               ec.token_labels(10), title),
    lambda heat, title: ec.overlay_chart(np.linspace(0, 1, 784).reshape(28, 28), heat, title),
])
def test_charts_drawn_in_place_differ_in_data_only_and_draw_what_the_chart_draws(make):
    rng = np.random.default_rng(5)
    one, two = make(rng.random((28, 28)), "Layer 0, head 1"), make(rng.random((28, 28)) ** 3, "Layer 3, head 2")
    a, b = (charts.in_place(charts.vega_spec(c), "head-map") for c in (one, two))
    assert {k: v for k, v in a.items() if k != "datasets"} == {k: v for k, v in b.items() if k != "datasets"}
    assert all(name.startswith("head-map-") for name in a["datasets"]) and a["datasets"] != b["datasets"]
    for chart, spec, title in ((one, a, "Layer 0, head 1"), (two, b, "Layer 3, head 2")):
        drawn = _svg(_inline(spec))
        assert title in drawn and drawn == _svg(chart.to_dict())  # the title, colours and scales of the chart


@pytest.mark.parametrize("chart", [
    charts.image_chart(np.zeros((28, 28))),
    charts.attribution_chart(np.zeros((28, 28)), np.ones((28, 28))),
    charts.heatmap_chart(np.zeros((7, 7))),
    charts.scores_chart([str(i) for i in range(10)], np.arange(10.0), 3),
    charts.curves_chart(np.linspace(0, 1, 5), {"deletion": np.ones(5), "random deletion": np.zeros(5)}),
])
def test_every_chart_has_tooltips_and_keeps_its_size(chart):
    spec = chart.to_dict()
    layers = spec.get("layer", [spec])
    assert any("tooltip" in layer.get("encoding", {}) for layer in layers)
    assert spec["autosize"]["type"] == "pad"


from dataclasses import dataclass  # noqa: E402
from typing import ClassVar  # noqa: E402


@dataclass(frozen=True)
class LatentView(state.AnalysisView):
    PAGE: ClassVar[str] = "latent-test"
    ANALYZERS: ClassVar[tuple[str, ...]] = ("latent_projection", "latent_traversal", "latent_interpolation")
    DEFAULT_MODEL: ClassVar[str] = "vae-2d"
    TWO_INPUTS: ClassVar[bool] = True


@dataclass(frozen=True)
class AttentionView(state.AnalysisView):
    PAGE: ClassVar[str] = "attention-test"
    ANALYZERS: ClassVar[tuple[str, ...]] = ("attention_maps", "head_statistics")


@dataclass(frozen=True)
class CapsulesView(state.AnalysisView):
    PAGE: ClassVar[str] = "capsules-test"
    ANALYZERS: ClassVar[tuple[str, ...]] = ("capsule_routing",)
    DEFAULT_MODEL: ClassVar[str] = "capsnet"


PAGE_VIEWS = [LatentView, AttentionView, CapsulesView]


@pytest.mark.parametrize("cls", PAGE_VIEWS)
def test_page_views_round_trip_and_offer_only_fitting_models(cls):
    view = cls()
    assert view.model in cls.models() and cls.analyzers_for(view.model)
    back, problems = cls.from_query(q(**{k.replace(".", "__"): v for k, v in view.to_query().items()}))
    assert problems == () and back == view


def test_analysis_view_params_are_prefixed_and_defaults_stay_out_of_the_url():
    from analyzers import TraversalParams

    view = LatentView(input=InputRef(3), input_b=InputRef(250))
    assert view.with_params("latent_traversal", TraversalParams()) == view
    changed = view.with_params("latent_traversal", TraversalParams(steps=11))
    query = changed.to_query()
    assert query == {"model": "vae-2d", "sample": "3", "sample_b": "250", "latent_traversal.steps": "11"}
    back, problems = LatentView.from_query({k: [v] for k, v in query.items()})
    assert problems == () and back == changed and back.params_of("latent_traversal").steps == 11


def test_analysis_view_reports_bad_params_texts_and_models():
    view, problems = AttentionView.from_query(
        {"model": ["minilm"], "text": ["   "], "attention_maps.head_fusion": ["median"], "capsnet": ["1"]})
    assert view.model == "minilm" and view.text == state.DEFAULT_TEXTS[0] and view.params == ()
    text = " ".join(problems)
    assert "empty" in text and "head_fusion" in text and "'capsnet'" in text
    view, problems = CapsulesView.from_query({"model": ["vit-dot"]})
    assert view.model == "capsnet" and "vit-dot" in problems[0]


def test_charts_export_as_svg_and_png_when_vl_convert_is_installed():
    pytest.importorskip("vl_convert", reason="vl-convert-python renders charts to SVG/PNG on the server")
    chart = charts.attribution_chart(np.zeros((28, 28)), np.ones((28, 28)))
    assert charts.chart_svg(chart).startswith(b"<svg")
    assert charts.chart_png(chart).startswith(b"\x89PNG")


def test_vega_spec_is_what_streamlit_sends_without_validating_again():
    from streamlit.elements import vega_charts

    chart = charts.attribution_chart(np.zeros((28, 28)), np.linspace(-1, 1, 784).reshape(28, 28))
    spec = charts.vega_spec(chart)
    assert spec == vega_charts._convert_altair_to_vega_lite_spec(chart)
    assert spec["usermeta"]["embedOptions"]["renderer"] == "canvas"
    assert "to_dict" not in vars(chart), "the chart validates as before once converted"

    import altair as alt
    import pandas as pd

    from altair.utils.schemapi import debug_mode

    with debug_mode(False):  # a chart with a mistake the schema check would catch
        broken = alt.Chart(pd.DataFrame({"a": [1]}), width="very wide").mark_point().encode(x="a:Q")
    assert charts.vega_spec(broken) is not None, "the spec is made without the schema check"
    with pytest.raises(Exception, match="width"):
        broken.to_dict()
