"""Latent space defaults that show something: vae-16d's grid opens on its two most active dimensions by KL,
traversal rows say their dimension and KL, and a clicked digit becomes the input or the path's other end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.util import AttributeDictionary

from analyzers import GridParams, LatentStatsParams
from app.features import latent
from app.features.latent import LatentView, latent_defaults
from app.links import catalogue
from app.runtime import compute, share
from app.runtime.models import heldout_split, sample_pixels
from app.ui.session import WidgetKeys
from model_zoo import get_spec
from tests.app.apptest import open_page

KEYS = WidgetKeys("latent")


def q(**kw: str) -> dict[str, list[str]]:
    return {k.replace("__", "."): [v] for k, v in kw.items()}


def grid_dims(view: LatentView) -> tuple[int, int]:
    grid = view.params_object("grid")
    return grid.dim_x, grid.dim_y


def kl_ranking(model: str) -> tuple[np.ndarray, tuple[int, int]]:
    """KL per dimension over the held-out split, and the two largest (most first)."""
    kl = compute.run("latent_statistics", model, LatentStatsParams()).kl_per_dim
    first, second = np.argsort(-kl, kind="stable")[:2]
    return kl, (int(first), int(second))


def ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# --------------------------------------------------------------------------- the grid's default dimensions


def test_vae16d_grid_defaults_to_its_two_most_active_dimensions_by_kl():
    kl, top = kl_ranking("vae-16d")
    assert kl[1] < 0.1 < kl[top[1]], "dimension 1 is nearly inactive: a grid over 0 and 1 shows nothing"
    assert grid_dims(LatentView("vae-16d")) == top
    assert dict(latent_defaults("vae-16d", "grid")) == {**dict(latent_defaults("vae-2d", "grid")),
                                                        "dim_x": str(top[0]), "dim_y": str(top[1])}


def test_the_recorded_dimensions_are_those_of_the_shipped_checkpoint():
    """Retraining vae-16d changes its sha256: record its most active dimensions again."""
    _, top = kl_ranking("vae-16d")
    assert latent.MOST_ACTIVE[("vae-16d", get_spec("vae-16d").sha256)] == top


def test_the_default_is_stable_and_needs_no_analysis(monkeypatch):
    first = latent_defaults("vae-16d", "grid")

    def refuse(*args, **kwargs):
        raise AssertionError("the shipped checkpoint's default grid is recorded, not computed")

    monkeypatch.setattr(compute, "run", refuse)
    assert latent_defaults("vae-16d", "grid") == first
    assert LatentView.from_query(q(model="vae-16d"))[0] == LatentView.from_query(q(model="vae-16d"))[0]
    assert not any(k.startswith("grid.") for k in LatentView("vae-16d").to_query())
    assert grid_dims(LatentView("vae-2d")) == (0, 1), "a 2-D latent's grid is its two dimensions, as before"


def test_another_checkpoint_has_its_dimensions_computed_once_from_its_kl(monkeypatch):
    _, top = kl_ranking("vae-16d")
    monkeypatch.setattr(latent, "MOST_ACTIVE", {})
    latent._computed_most_active.clear()
    calls = []
    real = compute.run
    monkeypatch.setattr(compute, "run", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    assert latent.most_active_dims("vae-16d") == latent.most_active_dims("vae-16d") == top
    assert calls == ["latent_statistics"]
    latent._computed_most_active.clear()


def test_links_with_explicit_grid_dimensions_still_win():
    view, problems = LatentView.from_query(q(model="vae-16d", grid__dim_x="4", grid__dim_y="7"))
    assert problems == () and grid_dims(view) == (4, 7)
    assert {"grid.dim_x": "4", "grid.dim_y": "7"}.items() <= view.to_query().items()
    old_default, _ = LatentView.from_query(q(model="vae-16d", grid__dim_x="0", grid__dim_y="1"))
    assert grid_dims(old_default) == (0, 1) and old_default.to_query()["grid.dim_y"] == "1"
    back, _ = LatentView.from_query({k: [v] for k, v in old_default.to_query().items()})
    assert back == old_default


def test_a_bad_grid_falls_back_to_the_most_active_dimensions():
    _, top = kl_ranking("vae-16d")
    view, problems = LatentView.from_query(q(model="vae-16d", grid__dim_x="16"))
    assert grid_dims(view) == top
    assert f"showing dimensions {top[0]} and {top[1]}, the two with the most KL" in " ".join(problems)


# --------------------------------------------------------------------------- the traversal's chart


def test_the_traversal_chart_is_valid_vega_lite_with_a_labelled_row_per_dimension():
    import altair as alt

    from app.charts.export import chart_png
    from app.charts.latent import offset_label, traversal_chart, traversal_frame

    rng = np.random.default_rng(0)
    images, offsets = rng.random((3, 5, 28, 28)), np.linspace(-2, 2, 5)
    labels, kl = ["z0 · KL 1.00", "z1 · KL 0.01 · inactive", "z2 · KL 0.50"], np.array([1.0, 0.01, 0.5])
    chart = traversal_chart(images, offsets, labels, kl)
    with alt.data_transformers.disable_max_rows():
        spec = chart.to_dict(validate=True)
    assert spec["encoding"]["y"]["sort"] == labels and "tooltip" in spec["encoding"]
    assert spec["encoding"]["x"]["axis"]["labelExpr"] == '["-2", "-1", "0", "+1", "+2"][datum.value]'
    assert offset_label(-2.25) == "-2.25" and offset_label(-0.0) == "0" and offset_label(1 / 150) == "+0.00667"
    frame = traversal_frame(images, offsets, labels, kl)
    assert len(frame) == 15 and list(frame.loc[frame["dim"] == 1, "row"].unique()) == [labels[1]]
    pytest.importorskip("vl_convert")
    assert chart_png(chart)[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- the page


def traversal_spec(at) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    found = [s for s in specs if s.get("mark", {}).get("type") == "image" and s["encoding"].get("url")]
    assert len(found) == 1, "the traversal is one chart of decoded digits"
    return found[0]


def test_the_vae16d_page_opens_on_the_most_active_grid_with_labelled_traversal_rows():
    kl, top = kl_ranking("vae-16d")
    stats = compute.run("latent_statistics", "vae-16d", LatentStatsParams())
    at = open_page("latent", {"model": "vae-16d", "sample": "5"})
    ok(at)
    assert (at.selectbox(key=KEYS.name("grid.dim_x")).value, at.selectbox(key=KEYS.name("grid.dim_y")).value) == top
    grid = next(img for el in at.get("image") for img in el.proto.imgs if img.caption.startswith("Columns:"))
    assert grid.caption.startswith(f"Columns: z{top[0]} ") and f"rows: z{top[1]} " in grid.caption
    assert "the two dimensions with the most KL" in grid.caption
    rows = traversal_spec(at)["encoding"]["y"]["sort"]
    assert len(rows) == kl.size
    for k, row in enumerate(rows):
        assert row.startswith(f"z{k} · KL {kl[k]:.2f}")
        assert row.endswith("inactive") == (not stats.active[k])
    assert "grid.dim_x" not in at.query_params


def test_a_vae2d_traversal_labels_both_rows_with_their_kl():
    kl, _ = kl_ranking("vae-2d")
    at = open_page("latent", {"model": "vae-2d", "sample": "5"})
    ok(at)
    assert traversal_spec(at)["encoding"]["y"]["sort"] == [f"z{k} · KL {kl[k]:.2f}" for k in range(2)]


def click_point(at, index: int) -> None:
    """What the browser sends when a point of the scatter is clicked: its selection state."""
    key = f"chart.scatter-{at.query_params['model']}-identity"
    at.session_state[key] = AttributeDictionary({"selection": AttributeDictionary({"point": [{"index": index}],
                                                                                    "brush": {}})})
    at.run()
    ok(at)


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


def test_a_clicked_digit_becomes_the_input_or_the_paths_other_end():
    y = heldout_split().y_heldout
    at = open_page("latent", {"model": "vae-2d", "sample": "5", "to": "700"})
    ok(at)
    assert not any(b.label == "Use as input" for b in at.button), "nothing clicked yet"
    click_point(at, 40)
    assert any(img.caption == f"held-out #40, labelled {y[40]}" for el in at.get("image") for img in el.proto.imgs)
    button(at, "Use as input").click().run()
    ok(at)
    assert at.query_params["sample"] == "40" and at.query_params["to"] == "700"
    assert at.selectbox(key=KEYS.name("digit")).value == y[40]
    assert at.select_slider(key=KEYS.name("sample")).value == 40
    assert button(at, "Use as input").disabled, "it is the input now"
    click_point(at, 123)
    button(at, "Use as the path's other end").click().run()
    ok(at)
    assert at.query_params["sample"] == "40" and at.query_params["to"] == "123"
    assert at.selectbox(key=KEYS.name("other.digit")).value == y[123]
    assert at.select_slider(key=KEYS.name("other.sample")).value == 123
    assert any(c.value.startswith("From held-out #40 to held-out #123") for c in at.caption)


def test_use_as_input_replaces_an_upload_with_the_clicked_digit():
    at = open_page("latent", {"model": "vae-2d", "sample": "5"})
    ok(at)
    at.radio(key=KEYS.name("source")).set_value("Upload").run()
    ok(at)
    assert sum(i.value.startswith("Nothing uploaded yet") for i in at.info) == 2, "traversal and interpolation wait"
    assert not any(b.label == "Share" for b in at.button) and at.metric, "the parts without an input still show"
    click_point(at, 77)
    button(at, "Use as input").click().run()
    ok(at)
    assert at.radio(key=KEYS.name("source")).value == "Held-out digit" and at.query_params["sample"] == "77"
    assert not at.info and any(b.label == "Share" for b in at.button)


def test_a_vae16d_link_saved_when_the_grid_opened_on_0_and_1_keeps_its_grid(monkeypatch):
    """A link stores only settings that differ from its day's defaults: its saved grid says which dimensions."""
    if not catalogue.has_weights("vae-16d"):
        pytest.skip("vae-16d has no checkpoint")
    grid = compute.run("manifold_grid", "vae-16d", GridParams(dim_x=0, dim_y=1))
    link = share.save_view("latent", {"model": "vae-16d", "sample": "3", "to": "512"}, title="old vae-16d link",
                           inputs={"pixels": sample_pixels(3)}, results={"grid": grid}, models=("vae-16d",))

    def refuse(*args, **kwargs):
        raise AssertionError("a saved analysis is shown from the store, not recomputed")

    monkeypatch.setattr(compute, "run", refuse)
    at = open_page("latent", {"id": link})
    assert not at.exception, [e.value for e in at.exception]
    next(b for b in at.button if b.label == "Change settings").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert (at.selectbox(key=KEYS.name("grid.dim_x")).value, at.selectbox(key=KEYS.name("grid.dim_y")).value) == (0, 1)
    assert at.query_params == {"id": link}
