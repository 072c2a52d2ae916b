"""The sparsely-gated MoE layer (Shazeer et al. 2017) and the shipped vit-moe checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from model_zoo import REGISTRY, build, load_split, moe
from model_zoo.moe import MoE, MoEViTConfig, ViTMoE, cv_squared, keep_top_k
from model_zoo.training import _loss_fn, evaluate
from model_zoo.vit import ViT, ViTConfig

TINY = MoEViTConfig(dim=16, depth=2, heads=2, mlp_dim=16, n_experts=4, k=2, moe_blocks=(0, 1), expert_dim=8)


def _tiny(k: int = 2, seed: int = 0) -> ViTMoE:
    torch.manual_seed(seed)
    model = ViTMoE(MoEViTConfig(**{**TINY.__dict__, "k": k}))
    for layer in model.modules():
        if isinstance(layer, MoE):
            torch.nn.init.normal_(layer.w_gate, std=1.0)  # a gate with signal (the paper starts from zero)
            torch.nn.init.normal_(layer.w_noise, std=0.5)
    return model


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("training", [True, False])
def test_gate_rows_have_k_nonzeros_summing_to_one(k, training):
    model = _tiny(k).train(training)
    out = model(torch.rand(3, 1, 28, 28), output_routing=True)
    assert len(out.routing) == 2
    for r in out.routing:
        assert r.gates.shape == (3, 50, 4)
        assert ((r.gates > 0).sum(-1) == k).all()
        torch.testing.assert_close(r.gates.sum(-1), torch.ones(3, 50))
        chosen = torch.zeros_like(r.gates, dtype=torch.bool).scatter(-1, r.topk, True)
        assert torch.equal(chosen, r.gates > 0)  # the non-zeros are exactly the top-k experts


def test_no_noise_at_evaluation():
    model = _tiny().eval()
    x = torch.rand(4, 1, 28, 28)
    a, b = model(x, output_routing=True), model(x, output_routing=True)
    for ra, rb in zip(a.routing, b.routing):
        assert torch.equal(ra.logits, ra.clean_logits)  # H(x) = x . W_g: no StandardNormal() term
        assert torch.equal(ra.gates, rb.gates)
    assert torch.equal(a.logits, b.logits)
    model.train()
    noisy = model(x, output_routing=True)
    assert not torch.equal(noisy.routing[0].logits, noisy.routing[0].clean_logits)  # while training: noise


def test_keep_top_k_and_cv_squared_by_hand():
    kept, idx = keep_top_k(torch.tensor([[0.5, 2.0, -1.0, 1.0]]), 2)
    assert kept[0, 1] == 2.0 and kept[0, 3] == 1.0 and math.isinf(kept[0, 0]) and math.isinf(kept[0, 2])
    assert sorted(idx[0].tolist()) == [1, 3]
    assert cv_squared(torch.tensor([1.0, 3.0])).item() == pytest.approx(0.25)  # var 1 / mean^2 4
    assert cv_squared(torch.tensor([2.0, 2.0, 2.0])).item() == pytest.approx(0.0)


def _paper_losses(x, w_g, w_noise, eps, k, w_imp, w_load):
    """The paper's eq. 3-11 written out with numpy and scipy, one token and one expert at a time."""
    clean = x @ w_g
    std = np.log1p(np.exp(x @ w_noise)) + 1e-2  # Softplus(x . W_noise), floored like tensor2tensor
    h = clean + eps * std  # H(x)
    n, e = h.shape
    gates = np.zeros_like(h)
    p = np.zeros_like(h)
    for t in range(n):
        top = np.argsort(-h[t])[:k]
        z = np.exp(h[t, top] - h[t, top].max())
        gates[t, top] = z / z.sum()  # Softmax(KeepTopK(H(x), k))
        for i in range(e):
            others = np.sort(np.delete(h[t], i))[::-1]
            kth_excluding = others[k - 1]
            p[t, i] = norm.cdf((clean[t, i] - kth_excluding) / std[t, i])  # P(x, i)
    importance, load = gates.sum(0), p.sum(0)
    cv2 = lambda v: v.var() / v.mean() ** 2
    return gates, importance, load, w_imp * cv2(importance), w_load * cv2(load)


@pytest.mark.parametrize("k", [1, 2])
def test_balancing_losses_equal_the_papers_formula_on_a_worked_example(k, monkeypatch):
    x = np.array([[1.0, 0.5], [-0.5, 2.0], [0.3, -1.0]])  # 3 tokens of 2 dims
    w_g = np.array([[1.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.5, -0.5]])  # W_g (2 x 4 experts)
    w_noise = np.array([[0.2, -0.3, 0.0, 0.1], [0.5, 0.0, -0.2, 0.3]])
    eps = np.array([[0.3, -1.2, 0.5, 0.0], [1.0, -0.4, 0.2, -0.7], [-0.1, 0.8, -1.5, 0.6]])  # the StandardNormal draws
    layer = MoE(dim=2, hidden=3, n_experts=4, k=k, w_importance=0.1, w_load=0.2).train()
    with torch.no_grad():
        layer.w_gate.copy_(torch.tensor(w_g)), layer.w_noise.copy_(torch.tensor(w_noise))
    monkeypatch.setattr(moe.torch, "randn_like", lambda t: torch.tensor(eps, dtype=t.dtype))
    _, r = layer(torch.tensor(x, dtype=torch.float32)[None])
    gates, importance, load, l_imp, l_load = _paper_losses(x, w_g, w_noise, eps, k, 0.1, 0.2)
    np.testing.assert_allclose(r.gates[0].detach().numpy(), gates, atol=1e-6)
    np.testing.assert_allclose(r.importance.detach().numpy(), importance, atol=1e-6)
    np.testing.assert_allclose(r.load.detach().numpy(), load, atol=1e-5)
    assert r.loss_importance.item() == pytest.approx(l_imp, rel=1e-5)
    assert r.loss_load.item() == pytest.approx(l_load, rel=1e-4)
    assert l_load > 0 and l_imp > 0


def test_training_loss_adds_the_balancing_losses():
    spec = REGISTRY["vit-moe"]
    model, x, y = _tiny().train(), torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(1)
    total = _loss_fn(spec)(model, x, y, None)
    torch.manual_seed(1)
    out = model(x, output_routing=True)
    ce = torch.nn.functional.cross_entropy(out.logits, y, label_smoothing=0.05)
    assert out.aux_loss > 0
    torch.testing.assert_close(total, ce + out.aux_loss)
    total.backward()
    assert model.blocks[0].mlp.w_gate.grad.abs().sum() > 0 and model.blocks[0].mlp.w_noise.grad.abs().sum() > 0


def test_ablated_expert_is_never_chosen():
    model = _tiny().eval()
    out = model(torch.rand(2, 1, 28, 28), output_routing=True, ablate={1: (0, 2)})
    assert not torch.isin(out.routing[1].topk, torch.tensor([0, 2])).any()
    assert torch.isin(out.routing[0].topk, torch.tensor([0, 2])).any()  # block 0 untouched


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="k must be"):
        MoE(4, 4, n_experts=2, k=2)
    with pytest.raises(ValueError, match="moe_blocks"):
        ViTMoE(MoEViTConfig(depth=2, moe_blocks=(5,)))


def test_plain_vits_keep_their_mlps():
    assert isinstance(ViT(ViTConfig()).blocks[3].mlp, torch.nn.Sequential)
    model = build(REGISTRY["vit-moe"])
    assert [type(b.mlp).__name__ for b in model.blocks] == ["Sequential", "Sequential", "MoE", "MoE"]


def test_shipped_moe_checkpoint_reproduces_its_metric(loaded):
    name, spec = "vit-moe", REGISTRY["vit-moe"]
    if not spec.checkpoint_path.exists():
        pytest.skip(f"{name} is not trained yet")
    card = spec.card
    assert card["config"]["n_experts"] == 8 and card["config"]["k"] == 2 and card["config"]["moe_blocks"] == [2, 3]
    assert card["metrics"]["accuracy"] >= 0.93
    model = loaded(name)
    assert evaluate(spec, model, load_split()) == card["metrics"]  # deterministic: no noise at evaluation
