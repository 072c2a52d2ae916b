"""The user's Hugging Face MoE folders (issue 19): the routing capability, the CLI's JSON, the per-token page."""

from __future__ import annotations

import json

import numpy as np
import pytest

import model_zoo
from analyzers import compatible
from app.charts.routing import token_routing_chart
from app.cli.main import main as cli_main
from app.features.routing import RoutingView
from app.links import catalogue
from model_zoo import sources
from tests import hf_fixtures as fx
from tests.app.apptest import errors, open_page

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def moe(tmp_path_factory):
    root = tmp_path_factory.mktemp("moe")
    sources.forget_all()
    folder = fx.tiny_mixtral_folder(root)
    names = model_zoo.register_folders([folder, fx.tiny_gpt2_folder(root)])
    assert names == ["tiny-mixtral", "tiny-gpt2"]
    yield folder
    sources.forget_all()


def test_an_moe_folder_gets_routing_and_only_the_text_routing_analyzer(moe):
    spec = model_zoo.get_spec("tiny-mixtral")
    assert "routing" in spec.capabilities and "text" in spec.capabilities
    fits = compatible(spec)
    assert "token_routing" in fits and not {"routing", "expert_load", "gate_attribution", "expert_ablation"} & set(fits)
    assert "routing" not in model_zoo.get_spec("tiny-gpt2").capabilities  # a dense model has no experts
    assert "token_routing" not in compatible(model_zoo.get_spec("tiny-gpt2"))
    assert "tiny-mixtral" in catalogue.routing_models() and "tiny-gpt2" not in catalogue.routing_models()
    if "vit-moe" in model_zoo.all_models():
        assert "token_routing" not in compatible(model_zoo.get_spec("vit-moe"))


def test_the_cli_gives_k_experts_per_token_with_gates_summing_to_one(moe, capsys):
    rc = cli_main(["analyze", "--model", str(moe), "--analyzer", "routing", "--input", "text:hello world this is",
                   "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["analyzer"] == "token_routing" and out["k"] == 2 and out["n_experts"] == 4
    assert len(out["layers"]) == 2
    for layer in out["layers"]:
        assert len(layer["tokens"]) >= 4 and sum(layer["load"]) == 2 * len(layer["tokens"])
        for tok in layer["tokens"]:
            assert len(tok["experts"]) == 2 and len(set(tok["experts"])) == 2
            assert sum(tok["gates"]) == pytest.approx(1, abs=2e-4)  # Mixtral renormalises over its top 2
            assert tok["gates"][0] >= tok["gates"][1]


def test_the_view_keeps_its_sentence_in_the_link(moe):
    view = RoutingView("tiny-mixtral", text="hello world")
    back, problems = RoutingView.from_query({k: [v] for k, v in view.to_query().items()})
    assert problems == () and back == view
    assert "text" not in RoutingView().to_query()


def test_the_token_chart_is_valid_vega_lite():
    experts = np.array([[[3, 1], [0, 2]]])  # (L=1, T=2, k=2)
    weights = np.array([[[0.6, 0.4], [0.55, 0.45]]])
    token_routing_chart(["a", "b"], experts, weights, 4, "t").to_dict(validate=True)


def test_the_page_shows_the_per_token_view(moe):
    at = open_page("routing", {"model": "tiny-mixtral", "text": "hello world this is"})
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at)
    assert "Routing per token" in [s.value for s in at.subheader]
    assert "Tokens per expert" in [s.value for s in at.subheader]
    assert any("top-2 routing (mixtral)" in c.value for c in at.caption)
    assert not [s for s in at.subheader if s.value == "Routing per layer"]  # the image panels are not drawn
    at.text_area[0].set_value("   ").run()
    assert not at.exception and any("Sentence" in e for e in errors(at))
