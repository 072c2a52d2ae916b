"""Routing analyzers on tiny MoE ViTs built in the test, and the vit-moe command-line contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import model_zoo
from analyzers import IGParams, ParamError, compatible, from_record, integrated_gradients, to_record
from analyzers.routing import (
    AblationParams,
    ExpertLoadParams,
    GateIGParams,
    RoutingParams,
    expert_ablation,
    expert_load,
    gate_attribution,
    heldout_subset,
    path_points,
    routing,
)
from model_zoo import ModelSpec
from model_zoo.moe import MoEViTConfig, ViTMoE
from model_zoo.registry import MNIST_INPUT

from .conftest import trained_or_skip

CFG = MoEViTConfig(dim=16, depth=2, heads=2, mlp_dim=16, n_experts=4, k=2, moe_blocks=(0, 1), expert_dim=8)
SPEC = ModelSpec(name="tiny-moe", family="moe", task="toy", description="tiny MoE ViT", paper="", input=MNIST_INPUT,
                 config=CFG, builder=ViTMoE, capabilities=frozenset({"gradients", "classifier", "routing"}))


def stable_routing() -> ViTMoE:
    """A tiny MoE whose gates always prefer experts 0 and 1: its routing cannot switch along any path."""
    torch.manual_seed(0)
    model = ViTMoE(CFG)
    with torch.no_grad():
        for b in model.blocks:
            b.ln2.weight.fill_(0.05), b.ln2.bias.zero_()
            b.ln2.bias[0] = 1.0  # the gate input is ~(1, 0, ..., 0) for every token
            torch.nn.init.normal_(b.mlp.w_gate, std=1.0)
            b.mlp.w_gate[0] = torch.tensor([3.0, 2.0, 0.0, -1.0])
    return model.eval().requires_grad_(False)


def switching_routing() -> ViTMoE:
    """A tiny MoE with sharp input-dependent gates and experts far apart: its routing switches, and F jumps there."""
    torch.manual_seed(0)
    model = ViTMoE(CFG)
    with torch.no_grad():
        for b in model.blocks:
            torch.nn.init.normal_(b.mlp.w_gate, std=3.0)
            for e, expert in enumerate(b.mlp.experts):
                expert[2].bias.fill_(10.0 * (e - 1.5))
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(3, 1, 28, 28)


def test_routing_gives_top_k_and_gate_weights_per_token(x):
    r = routing(switching_routing(), SPEC, x, RoutingParams())
    assert r.experts.shape == (3, 2, 50, 2) and r.weights.shape == (3, 2, 50, 2) and r.gates.shape == (3, 2, 50, 4)
    np.testing.assert_allclose(r.weights.sum(-1), 1.0, atol=1e-6)
    assert ((r.gates > 0).sum(-1) == 2).all()
    assert (np.diff(r.weights, axis=-1) <= 0).all()  # by decreasing gate
    assert (r.load.sum(-1) == 50 * 2).all()  # every token sends k assignments
    np.testing.assert_allclose(r.importance.sum(-1), 50, rtol=1e-5)
    s = r.summary()
    assert s["k"] == 2 and s["n_experts"] == 4 and len(s["layers"]) == 3 and len(s["layers"][0]) == 2
    tok = s["layers"][0][1]["tokens"][8]
    assert tok["name"] == "patch (1, 0)" and len(tok["experts"]) == 2 and sum(tok["gates"]) == pytest.approx(1, abs=1e-3)
    assert from_record(*to_record(r)).experts.tolist() == r.experts.tolist()


def test_ig_completeness_holds_when_routing_does_not_switch(x):
    r = integrated_gradients(stable_routing(), SPEC, x, IGParams(n_steps=64))
    assert r.routing_switches.tolist() == [0, 0, 0]
    assert (r.rel_error < 1e-3).all() and not r.flagged.any()
    assert r.summary()["routing_switches"] == [0, 0, 0]


def test_ig_flags_and_explains_when_routing_switches(x):
    r = integrated_gradients(switching_routing(), SPEC, x[:2], IGParams(n_steps=64))
    assert (r.routing_switches > 0).all()
    assert r.flagged.all()  # the jumps where the experts change are missing from the path integral
    assert all(a.startswith("Routing switched") and "completeness can fail" in a for a in r.advice)
    assert "routing_switches" in r.summary()


def test_ig_of_other_models_has_no_switch_count(digits):
    from .conftest import untrained

    r = integrated_gradients(untrained("vit-dot"), model_zoo.get_spec("vit-dot"), digits[:1], IGParams(n_steps=8))
    assert r.routing_switches is None and "routing_switches" not in r.summary()


def test_gate_attribution_is_complete_in_the_first_moe_layer_and_counts_switches_after(x):
    model = switching_routing()
    first = gate_attribution(model, SPEC, x, GateIGParams(block=0, expert=2, token=10, n_steps=64))
    assert first.routing_switches.tolist() == [0, 0, 0]  # no MoE layer before block 0
    assert (first.rel_error < 0.01).all() and not first.flagged.any()
    assert first.experts.tolist() == [2, 2, 2] and first.tokens.tolist() == [10, 10, 10]
    np.testing.assert_allclose(first.attributions.reshape(3, -1).sum(1), first.f_x - first.f_baseline, rtol=0.01)
    later = gate_attribution(model, SPEC, x, GateIGParams(block=1, n_steps=64))
    assert (later.routing_switches > 0).all()
    picked = routing(model, SPEC, x).gates[np.arange(3), 1, later.tokens, later.experts]
    np.testing.assert_allclose(later.gate_weight, picked, atol=1e-6)  # -1/-1: the strongest patch and its expert
    assert later.summary()["block"] == 1


def test_gate_attribution_refuses_a_block_without_moe(x):
    with pytest.raises(ParamError, match="MoE layers are in blocks"):
        gate_attribution(stable_routing(), SPEC, x, GateIGParams(block=5))
    with pytest.raises(ParamError, match="experts 0 to 3"):
        gate_attribution(stable_routing(), SPEC, x, GateIGParams(block=0, expert=7))


def test_path_points_include_both_ends():
    p = path_points("gausslegendre", 4)
    assert p[0] == 0 and p[-1] == 1 and len(p) == 6


def test_expert_load_over_heldout():
    r = expert_load(switching_routing(), SPEC, None, ExpertLoadParams(n_examples=40, top_n=3))
    assert r.class_load.shape == (2, 10, 4)
    np.testing.assert_allclose(r.class_load.sum(-1), 1.0, atol=1e-9)
    np.testing.assert_allclose(r.load.sum(-1), 40 * 50 * 2)
    np.testing.assert_allclose(r.cv_load, r.load.std(-1) / r.load.mean(-1))
    np.testing.assert_allclose(r.cv_importance, r.importance.std(-1) / r.importance.mean(-1))
    assert r.top_crops.shape == (2, 4, 3, 12, 12) and (r.top_tokens >= 1).all()
    assert (np.diff(r.top_gates, axis=-1) <= 0).all()
    assert set(np.unique(model_zoo.load_split().y_heldout[heldout_subset(40)[2]])) == set(range(10))  # every class
    x = torch.from_numpy(model_zoo.load_split().x_heldout[r.top_images[1, 2, 0]]).float().div(255)[None, None]
    again = routing(switching_routing(), SPEC, x)  # the top patch's gate, recomputed from its held-out image
    assert again.gates[0, 1, r.top_tokens[1, 2, 0], 2] == pytest.approx(r.top_gates[1, 2, 0], abs=1e-5)


def test_expert_ablation_reroutes_and_measures_per_class():
    model = switching_routing()
    r = expert_ablation(model, SPEC, None, AblationParams(block=1, expert=0, n_examples=60))
    assert r.counts.sum() == 60 and 0 < r.rerouted <= 1
    x, y, _ = heldout_subset(60)
    before = routing(model, SPEC, x).predictions
    y = y.numpy()
    assert r.overall_before == pytest.approx(float(np.mean(before == y)), abs=1e-4)
    assert r.changed > 0  # experts 10 apart: removing one changes predictions
    assert r.summary()["expert"] == 0


def test_routing_analyzers_fit_moe_models_only():
    assert {"routing", "expert_load", "gate_attribution", "expert_ablation"} <= set(compatible(model_zoo.get_spec("vit-moe")))
    assert "routing" not in compatible(model_zoo.get_spec("vit-dot"))


def test_cli_routing_contract(capsys):
    trained_or_skip("vit-moe")
    from app.cli.main import main

    assert main(["analyze", "--model", "vit-moe", "--analyzer", "routing", "--input", "sample:17", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["k"] == 2 and s["n_experts"] == 8 and [l["block"] for l in s["layers"]] == [2, 3]
    for layer in s["layers"]:
        assert len(layer["tokens"]) == 50 and sum(layer["load"]) == 100 and len(layer["load"]) == 8
        assert all(len(t["experts"]) == 2 and sum(t["gates"]) == pytest.approx(1, abs=1e-3) for t in layer["tokens"])


def test_cli_integrated_gradients_on_vit_moe_reports_rel_error_and_switches(capsys, monkeypatch):
    trained_or_skip("vit-moe")
    from app.cli.main import main

    monkeypatch.setenv("ZOOSCOPE_ANALYSIS_TIMEOUT_S", "0")  # a shared CPU: the check of its advice runs IG again
    assert main(["analyze", "--model", "vit-moe", "--analyzer", "integrated_gradients", "--input", "sample:17",
                 "--param", "n_steps=16", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["rel_error"] >= 0 and s["routing_switches"] > 0
    if s["flagged"]:
        assert s["advice"].startswith(f"Routing switched {s['routing_switches']} times")
