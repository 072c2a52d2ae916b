"""The exploration pages (Attention, Synthesizers, Latent space, Capsules): views, charts, and the pages in AppTest.

Pages render with their main widgets for every model they offer, a share link made in one
session shows identical charts, images and numbers in a fresh one without computing anything,
and bad link parameters give an error above a page that still works.
"""

from __future__ import annotations

import model_zoo


import pytest
from streamlit.testing.v1 import AppTest

from tests.app.apptest import change_settings, open_page, settings_summary

from app.features.attention import AttentionView
from app.features.capsules import CapsuleView
from app.features.latent import LatentView, latent_defaults
from app.features.synthesizers import SynthesizerView
from app.links import catalogue
from app.links.codec import InputRef
from app.runtime import compute, pose
from app.ui.session import WidgetKeys

SENTENCES = {"a": "A cat sat on the mat.", "b": "A dog lay on the rug."}


def q(**kw: str) -> dict[str, list[str]]:
    """A query as Streamlit gives it (``__`` stands for ``.`` in keys)."""
    return {k.replace("__", "."): [v] for k, v in kw.items()}


shipped = catalogue.has_weights


def require(*models: str) -> None:
    missing = [m for m in models if not shipped(m)]
    if missing:
        pytest.skip(f"no checkpoint for {', '.join(missing)} yet: run `zooscope train {missing[0]}`")


# --------------------------------------------------------------------------- views and URLs


@pytest.mark.parametrize("view", [
    AttentionView(),
    AttentionView("minilm", texts=("Hi <b>there</b> :red[x]", "مرحبا 👋"), layer=5, head=11),
    AttentionView("vit-dot", InputRef(42), layer=3, head=2,
                  params=(("head_fusion", "max"), ("gradient_rollout", "false"), ("target", "7"))),
    SynthesizerView(),
    SynthesizerView(InputRef(300), 3, 1, (("dependence", "js"),)),
    LatentView(),
    LatentView("vae-16d", InputRef(5), 900, (("proj", (("method", "umap"), ("n_neighbors", "30"), ("min_dist", "0.1"),
                                                       ("perplexity", "30.0"), ("seed", "0"))),
                                             ("grid", (("n", "9"), ("span", "0.9"), ("dim_x", "4"), ("dim_y", "7"))))),
    CapsuleView(),
    CapsuleView("capsnet", InputRef(500), 3, 5, (("steps", "7"), ("span", "0.3"))),
])
def test_views_round_trip_through_the_url(view):
    back, problems = type(view).from_query({k: [v] for k, v in view.to_query().items()})
    assert problems == ()
    assert back == view


def test_latent_views_are_canonical_and_write_only_what_differs():
    view = LatentView("vae-16d")
    assert view.params("proj") == latent_defaults("vae-16d", "proj")
    assert dict(view.params("proj"))["method"] == "pca"
    assert view.to_query() == {"model": "vae-16d", "sample": "0", "to": "700"}
    assert LatentView.from_query(q(model="vae-16d", trav__k="2.0"))[0].to_query()["trav.k"] == "2.0"


@pytest.mark.parametrize("cls, query, expected", [
    (AttentionView, q(model="gpt-9", layer="-1", head="x"), ["'gpt-9'", "layer -1", "head must be a whole number"]),
    (AttentionView, q(model="minilm", a="   ", b="x" * 400), ["Sentence A", "empty", "Sentence B", "limit is 300"]),
    (SynthesizerView, q(sample="1000", dependence="kl", junk="1"), ["sample 1000", "dependence='kl'", "'junk'"]),
    (LatentView, q(model="vae-16d", proj__method="identity", grid__dim_x="16", interp__steps="1"),
     ["16-D latent", "two different latent dimensions", "steps='1'"]),
    (CapsuleView, q(target="10", routing_class="nan", pose__span="5", pose__target="1"),
     ["target", "routing_class", "span='5'", "'pose.target'"]),
])
def test_bad_link_values_each_get_a_message_and_a_usable_default(cls, query, expected):
    view, problems = cls.from_query(query)
    text = " ".join(problems)
    assert all(e in text for e in expected), problems
    assert type(view).from_query({k: [v] for k, v in view.to_query().items()})[1] == ()


def test_the_pages_offer_the_models_their_analyzers_fit():
    assert "minilm" in catalogue.attention_models() and "vit-dot" in catalogue.attention_models()
    assert "minilm" not in catalogue.synthesizer_models()
    assert set(catalogue.latent_models()) == {"vae-2d", "vae-16d"}
    assert catalogue.capsule_models() == ("capsnet",)
    assert catalogue.projection_methods("vae-16d") == ("pca", "tsne", "umap")


# --------------------------------------------------------------------------- chart builders


# --------------------------------------------------------------------------- pages in AppTest


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def shown(at: AppTest) -> dict[str, object]:
    """What a person sees that carries numbers: chart specs and data, images, metrics, captions."""
    charts = [(c.proto.spec, tuple(d.data.data for d in c.proto.datasets)) for c in at.get("vega_lite_chart")]
    images = [img.url for el in at.get("image") for img in el.proto.imgs]
    return {"charts": charts, "images": images, "metrics": {m.label: m.value for m in at.metric},
            "captions": [c.value for c in at.caption if not any(w in c.value for w in SHARE_CAPTIONS)]}


SHARE_CAPTIONS = ("saved", "Anyone with this link")  # the framework's notes about a link, not results


def labels(elements) -> set[str]:
    return {e.label for e in elements}


@pytest.mark.parametrize("model", catalogue.attention_models())
def test_attention_renders_every_attention_model(model):
    require(model)
    text = {"text": "A gripping, funny film."} if model_zoo.get_spec(model).family == "text-classifier" else SENTENCES
    query = {"model": model, **(text if catalogue.is_text_model(model) else {"sample": "3"})}
    at = open_page("attention", query)
    ok(at)
    assert at.title[0].value == "Attention"
    assert {"Model", "Layer", "Head"} <= labels(at.selectbox)
    assert len(at.get("vega_lite_chart")) >= 4
    if catalogue.is_text_model(model):
        assert labels(at.text_area) == ({"Text"} if "text" in text else {"Sentence A", "Sentence B"})
        if "text" not in text:  # a sentence pair: both lengths and their similarity
            assert any(c.value.startswith("Tokens: sentence A 9, sentence B 9") for c in at.caption)
            assert "cos(A, B)" in {m.label for m in at.metric}
    else:
        assert "Digit class" in labels(at.selectbox)
        assert {"Every layer and head", "Rollout"} <= {s.value for s in at.subheader}


def test_attention_switches_head_without_losing_the_input():
    at = open_page("attention", {"model": "vit-dot", "sample": "3"})
    at.selectbox(key=WidgetKeys("attention").name("head")).set_value(2).run()
    ok(at)
    assert at.query_params["head"] == "2" and at.query_params["sample"] == "3"


def _rows(node):
    """Every row of columns under ``node``, as a list of its columns, top to bottom."""
    children = list(node.children.values()) if isinstance(getattr(node, "children", None), dict) else []
    columns = [c for c in children if getattr(c, "type", "") == "column"]
    found = [columns] if columns else []
    for c in children:
        found += _rows(c)
    return found


def _kinds(node) -> list[str]:
    children = list(node.children.values()) if isinstance(getattr(node, "children", None), dict) else []
    return [getattr(node, "type", "")] + [k for c in children for k in _kinds(c)]


def test_two_sentences_maps_of_different_heights_have_their_save_menus_on_one_line():
    require("minilm")
    at = open_page("attention", {"model": "minilm", "a": "A man is playing a guitar on stage.", "b": "Hi."})
    ok(at)
    rows = _rows(at.main)
    pairs = [i for i, row in enumerate(rows) if len(row) == 2 and all(_kinds(c).count("vega_lite_chart") == 1 for c in row)]
    assert len(pairs) == 2, "the chosen head's maps and the rollouts, A beside B"
    for i in pairs:
        assert all("popover" not in _kinds(c) for c in rows[i]), "no menu under a chart, where heights differ"
        menus = rows[i + 1]
        assert len(menus) == 2 and all(_kinds(c).count("popover") == 1 for c in menus), "a row of two Save menus next"


def test_synthesizers_shows_every_model_it_can_and_names_fixed_patterns():
    at = open_page("synthesizers", {"sample": "300", "layer": "1"})
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Synthesizers"
    assert {"Layer", "Head", "Digit class"} <= labels(at.selectbox)
    assert "Input-dependence per head" in {s.value for s in at.subheader}
    assert len(at.dataframe) == 2, "the models' summary and the per-head statistics"
    models = at.dataframe[0].value
    assert list(models["model"]) == [m for m in catalogue.synthesizer_models() if shipped(m)]
    if shipped("vit-random"):
        row = models[models["model"] == "vit-random"].iloc[0]
        assert row["attention"].startswith("fixed") and row["mean input-dependence"] < 1e-6
        assert any("same for every input" in i.value for i in at.info)
    if shipped("vit-mixture"):
        assert "Mixture of synthesizers" in {s.value for s in at.subheader}
    missing = [m for m in catalogue.synthesizer_models() if not shipped(m)]
    assert bool(at.warning) == bool(missing)


@pytest.mark.parametrize("model", catalogue.latent_models())
def test_latent_renders_every_latent_model(model):
    at = open_page("latent", {"model": model, "sample": "5"})
    ok(at)
    assert {"Model", "Projection", "Digit class", "Path to: digit class"} <= labels(at.selectbox)
    assert at.selectbox(key=WidgetKeys("latent").name("proj.method")).value == catalogue.default_projection(model)
    assert {m.label for m in at.metric} == {"KL, all dimensions", "Active units", "Linear probe"}
    assert len(at.get("image")) >= 4  # grid, traversal, linear and slerp paths
    assert at.tabs and len(at.get("vega_lite_chart")) >= 3


def test_capsules_sliders_redraw_the_reconstruction():
    require("capsnet")
    at = open_page("capsules", {"sample": "500"})
    ok(at)
    assert len(at.slider) == 16 and {"Decode from capsule", "Routing to capsule"} <= labels(at.selectbox)
    assert at.metric[0].label == "Prediction"
    before = shown(at)["images"]
    at.slider(key=WidgetKeys("capsules").name("slider.3")).set_value(0.2).run()
    ok(at)
    assert shown(at)["images"] != before


def refuse_to_compute(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a shared analysis must be shown from the store, not recomputed")
    monkeypatch.setattr(compute, "run", boom)
    monkeypatch.setattr(pose, "reconstruction", boom)


SHARED = [  # page, query, a line the shared view's settings list must hold
    ("attention", {"model": "vit-dot", "sample": "17", "layer": "2", "head": "1", "head_fusion": "max"},
     "**head_fusion** max"),
    ("attention", {"model": "minilm", **SENTENCES, "layer": "4", "head": "7"}, "**Sentence A** A cat sat on the mat."),
    ("synthesizers", {"sample": "200", "head": "3"}, "**Example** #200"),
    ("latent", {"model": "vae-16d", "sample": "40", "to": "950", "trav.steps": "5", "grid.dim_y": "5"},
     "**Path to: example** #950"),
    ("capsules", {"sample": "800", "target": "3"}, "**Decode from capsule** 3"),
]


@pytest.mark.parametrize("page, query, line", SHARED, ids=[f"{p}-{q.get('model', '')}" for p, q, _ in SHARED])
def test_a_share_link_reproduces_identical_numbers_in_a_fresh_session(page, query, line, monkeypatch):
    require(*[m for m in (query.get("model"), "capsnet" if page == "capsules" else None) if m])
    first = open_page(page, query)
    ok(first)
    before = shown(first)
    next(b for b in first.button if b.label == "Share").click().run()
    ok(first)
    link = first.query_params.get("id")
    assert isinstance(link, str) and len(link) == 22, first.query_params

    refuse_to_compute(monkeypatch)
    second = open_page(page, {"id": link})
    ok(second)
    assert second.query_params == {"id": link}
    assert any("numbers are the saved ones" in c.value for c in second.caption)
    assert shown(second) == before
    summary = settings_summary(second)  # the settings as text; the controls come on request
    assert summary is not None and line in summary.split("  \n"), summary
    change_settings(second)
    ok(second)
    assert settings_summary(second) is None and second.selectbox
    assert shown(second) == before and second.query_params == {"id": link}


BAD = [
    ("attention", {"model": "nope", "layer": "99"}, "'nope'", "Layer"),
    ("attention", {"model": "vit-dot", "head": "9"}, "no head 9", "Head"),
    ("attention", {"model": "minilm", "a": "", "b": "ok"}, "Sentence A", "Sentence A"),
    ("synthesizers", {"sample": "-4", "dependence": "<b>x</b>"}, "sample", "Layer"),
    ("latent", {"model": "vae-2d", "proj.method": "tsne!", "to": "abc"}, "tsne!", "Projection"),
    ("capsules", {"target": "99", "id": "../../etc"}, "not a zooscope link id", "Decode from capsule"),
]


@pytest.mark.parametrize("page, query, expected, widget", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_links_show_an_error_above_a_usable_page(page, query, expected, widget):
    require(*(["capsnet"] if page == "capsules" else []), *([query["model"]] if query.get("model") == "minilm" else []))
    at = open_page(page, query)
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and any(expected in e.value.replace("\\", "") for e in at.error), [e.value for e in at.error]
    assert widget in labels(at.selectbox) | labels(at.text_area)
    assert at.get("vega_lite_chart"), "the page still shows its analysis"
