"""Mixture-of-experts routing: where every token goes, how balanced the experts are, and why.

For models with the "routing" capability (``model_zoo.moe.ViTMoE``: sparsely-gated MoE layers
after Shazeer et al. 2017, https://arxiv.org/abs/1701.06538). Nothing here existed in a
library, so it is written by hand:

- :func:`routing`: per MoE layer, each token's top-k experts and gate weights, and the load.
- :func:`expert_load`: over the held-out set, the class x expert load matrix, the paper's balance
  measures (coefficient of variation of importance and load) and each expert's top patches.
- :func:`gate_attribution`: Integrated Gradients (captum) of one gate logit (x . W_g)_e, with
  completeness, and how often the routing of earlier MoE layers switched along the path.
- :func:`expert_ablation`: accuracy per class with one expert removed from the routing.
- :func:`path_switches` / :func:`with_routing_switches`: a top-k gate is discontinuous where
  its chosen experts change, so IG's completeness can fail there; the class-logit IG of a MoE
  model reports how many times the routing switched along its path, and says so when flagged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients
from captum.attr._utils.approximation_methods import approximation_parameters

from .baselines import make_baselines
from .completeness import advice as completeness_advice
from .completeness import completeness, convergence_delta, trapezoid_scale
from .forward import image_batch
from .params import IG_METHODS, ParamError, Params, baseline_param, param
from .routing_results import AblationResult, ExpertLoadResult, GateAttributionResult, RoutingResult
from .run import analysis
from .spec import Inputs

SHAZEER_PAPER = ("Shazeer et al. 2017, Outrageously Large Neural Networks: The Sparsely-Gated "
                 "Mixture-of-Experts Layer, https://arxiv.org/abs/1701.06538")
CROP_PAD = 4  # pixels of context around a top patch
MAX_EXPERTS = 64


@dataclass(frozen=True)
class RoutingParams(Params):
    """Routing of every token: the top-k experts and gate weights per MoE layer."""


@dataclass(frozen=True)
class ExpertLoadParams(Params):
    """Expert load over the held-out set: class x expert matrix, balance measures, top patches."""

    n_examples: int = param(1000, min=10, max=1000, help="Held-out images routed (spread evenly over the split)")
    top_n: int = param(8, min=1, max=16, help="Most strongly routed patches shown per expert")


@dataclass(frozen=True)
class GateIGParams(Params):
    """Integrated Gradients of a gate logit: which pixels sent a patch to an expert."""

    block: int = param(-1, min=-1, max=63, help="Transformer block of the MoE layer; -1 = the last MoE layer")
    expert: int = param(-1, min=-1, max=MAX_EXPERTS - 1,
                        help="Expert whose gate logit is explained; -1 = the token's first choice")
    token: int = param(-1, min=-1, max=49, help="Token: 0 = CLS, 1..49 = patches row by row; -1 = the patch "
                       "with the largest gate weight for the expert (any expert when expert = -1)")
    n_steps: int = param(64, min=2, max=1024, help="Number of steps of the path integral")
    method: str = param("gausslegendre", choices=IG_METHODS, help="Quadrature rule for the path integral")
    baseline: str = baseline_param()
    baseline_draws: int = param(8, min=1, max=64, help="Number of uniform-noise baselines averaged over")
    blur_sigma: float = param(4.0, min=0.5, max=14.0, help="Standard deviation in pixels of the blur baseline")
    seed: int = param(0, min=0, max=2**31 - 1, help="Random seed for the uniform baselines")

    def cost_factors(self) -> dict[str, int]:
        """n_steps path points (and as many again to count the routing switches), per baseline draw."""
        return {"n_steps": 2 * self.n_steps,
                **({"baseline_draws": self.baseline_draws} if self.baseline == "uniform" else {})}


@dataclass(frozen=True)
class AblationParams(Params):
    """Remove one expert from a MoE layer's routing and measure accuracy per class."""

    block: int = param(-1, min=-1, max=63, help="Transformer block of the MoE layer; -1 = the last MoE layer")
    expert: int = param(0, min=0, max=MAX_EXPERTS - 1, help="Expert removed: its tokens go to their next best experts")
    n_examples: int = param(1000, min=10, max=1000, help="Held-out images measured (spread evenly over the split)")


# --------------------------------------------------------------------------- helpers


def moe_blocks(model) -> tuple[int, ...]:
    """The blocks of a MoE model whose MLP is a MoE layer."""
    return tuple(model.cfg.moe_blocks)


def resolve_block(model, block: int) -> int:
    """-1 -> the last MoE layer; any other value must name a MoE block."""
    blocks = moe_blocks(model)
    if block < 0:
        return blocks[-1]
    if block not in blocks:
        raise ParamError(f"block={block} has no MoE layer; this model's MoE layers are in blocks {list(blocks)}")
    return block


def _check_expert(model, expert: int) -> None:
    if expert >= model.cfg.n_experts:
        raise ParamError(f"expert={expert} does not exist: this model has experts 0 to {model.cfg.n_experts - 1}")


def _np(t: torch.Tensor, dtype=np.float32) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype, copy=False)


def _routed(model, x: torch.Tensor, batch: int = 250):
    """Logits and per-layer routing (gates, topk, clean logits) for x in chunks, without gradients."""
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            o = model(x[i:i + batch], output_routing=True)
            outs.append((o.logits, [(r.gates, r.topk, r.clean_logits) for r in o.routing]))
    logits = torch.cat([o[0] for o in outs])
    layers = [tuple(torch.cat([o[1][l][j] for o in outs]) for j in range(3)) for l in range(len(outs[0][1]))]
    return logits, layers  # (N, C), [(gates (N,T,E), topk (N,T,k), clean (N,T,E))] per layer


def heldout_subset(n: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """n held-out images spread evenly over the split (it is ordered by class): pixels, labels, indices."""
    from model_zoo import load_split

    split = load_split()
    idx = np.unique(np.linspace(0, len(split.y_heldout) - 1, n).round().astype(np.int64))
    x = torch.from_numpy(split.x_heldout[idx]).float().div(255).unsqueeze(1)
    return x, torch.from_numpy(split.y_heldout[idx]).long(), idx


# --------------------------------------------------------------------------- analyzers


def routing(model, spec, inputs: Inputs, params: RoutingParams = RoutingParams()) -> RoutingResult:
    """Per MoE layer, the top-k experts and gate weights of every token, and the load per expert.

    Gate rows G(x) have exactly k non-zeros summing to 1 (softmax over the kept top-k logits);
    no noise is added at evaluation.
    """
    with analysis(model, spec, "routing", params) as run:
        x = image_batch(inputs, spec, run.device)
        logits, layers = _routed(model, x)
        E = model.cfg.n_experts
        gates = torch.stack([g for g, _, _ in layers], 1)  # (B, L, T, E)
        topk = torch.stack([t for _, t, _ in layers], 1)  # (B, L, T, k)
        return RoutingResult(
            info=run.info(), inputs=_np(x), blocks=moe_blocks(model), experts=_np(topk, np.int64),
            weights=_np(gates.gather(-1, topk)), gates=_np(gates), logits=_np(torch.stack([c for _, _, c in layers], 1)),
            load=_np(torch.nn.functional.one_hot(topk, E).sum((2, 3)), np.int64), importance=_np(gates.sum(2)),
            scores=_np(logits), predictions=_np(logits.argmax(1), np.int64), labels=tuple(spec.input.labels))


def _cv(v: torch.Tensor) -> torch.Tensor:
    """Coefficient of variation std/mean over the last axis (population std, as in the paper's CV^2 loss)."""
    return v.double().std(-1, unbiased=False) / v.double().mean(-1).clamp(min=1e-12)


def expert_load(model, spec, inputs: Inputs, params: ExpertLoadParams = ExpertLoadParams()) -> ExpertLoadResult:
    """Routing over the held-out set: class x expert load, CV of importance and load, top patches per expert.

    ``inputs`` are not used: the analysis runs on the first ``n_examples`` held-out images.
    Load counts the tokens each expert receives (no noise at evaluation); importance sums their
    gate weights. Top patches exclude the CLS token.
    """
    with analysis(model, spec, "expert_load", params) as run:
        x, y, index = heldout_subset(params.n_examples)
        logits, layers = _routed(model, x.to(run.device))
        C, E, n = len(spec.input.labels), model.cfg.n_experts, params.top_n
        class_load, importance, load, tops = [], [], [], []
        onehot_y = torch.nn.functional.one_hot(y, C).double()  # (N, C)
        for gates, topk, _ in layers:
            gates, topk = gates.cpu().double(), topk.cpu()
            per_image = torch.nn.functional.one_hot(topk, E).sum((1, 2)).double()  # (N, E) assignments
            by_class = onehot_y.T @ per_image  # (C, E)
            class_load.append(by_class / by_class.sum(1, keepdim=True).clamp(min=1))
            importance.append(gates.sum((0, 1)))
            load.append(per_image.sum(0))
            patch_gates = gates[:, 1:, :].permute(2, 0, 1).reshape(E, -1)  # (E, N*49)
            v, idx = patch_gates.topk(min(n, patch_gates.shape[1]), dim=1)
            tops.append((idx // 49, idx % 49 + 1, v))
        imgs = torch.stack([t[0] for t in tops])  # (L, E, n)
        toks = torch.stack([t[1] for t in tops])
        importance_t, load_t = torch.stack(importance), torch.stack(load)
        return ExpertLoadResult(
            info=run.info(), blocks=moe_blocks(model), labels=tuple(spec.input.labels),
            class_load=_np(torch.stack(class_load), np.float64), importance=_np(importance_t, np.float64),
            load=_np(load_t, np.float64), cv_importance=_np(_cv(importance_t), np.float64),
            cv_load=_np(_cv(load_t), np.float64), top_images=index[_np(imgs, np.int64)], top_tokens=_np(toks, np.int64),
            top_gates=_np(torch.stack([t[2] for t in tops])), top_crops=_crops(x, imgs, toks, model.cfg.patch_size),
            accuracy=round(float((logits.argmax(1).cpu() == y).double().mean()), 4), n_examples=len(y))


def _crops(x: torch.Tensor, imgs: torch.Tensor, toks: torch.Tensor, p: int) -> np.ndarray:
    """(L, E, n, p + 2 pad, ...) crops of each top patch with its surroundings dimmed to 35 %."""
    pad, side = CROP_PAD, p + 2 * CROP_PAD
    xp = torch.nn.functional.pad(x[:, 0], (pad, pad, pad, pad))  # (N, 28 + 2 pad, ...)
    dim = torch.full((side, side), 0.35)
    dim[pad:pad + p, pad:pad + p] = 1.0
    grid = x.shape[-1] // p
    out = torch.zeros(*imgs.shape, side, side)
    for index in np.ndindex(*imgs.shape):
        t = int(toks[index]) - 1
        r, c = (t // grid) * p, (t % grid) * p
        out[index] = xp[int(imgs[index]), r:r + side, c:c + side] * dim
    return _np(out)


def expert_ablation(model, spec, inputs: Inputs, params: AblationParams = AblationParams()) -> AblationResult:
    """Accuracy per class on the held-out set with one expert removed from one MoE layer's routing.

    The ablated expert is taken out of the top-k competition (its gate logit set to -inf), so
    its tokens go to their next best experts. ``inputs`` are not used.
    """
    with analysis(model, spec, "expert_ablation", params) as run:
        block = resolve_block(model, params.block)
        _check_expert(model, params.expert)
        x, y, _ = heldout_subset(params.n_examples)
        x = x.to(run.device)
        before, layers = _routed(model, x)
        topk = layers[moe_blocks(model).index(block)][1]
        with torch.no_grad():
            after = torch.cat([model(x[i:i + 250], ablate={block: (params.expert,)}) for i in range(0, len(x), 250)])
        pb, pa = before.argmax(1).cpu(), after.argmax(1).cpu()
        C = len(spec.input.labels)
        counts = torch.bincount(y, minlength=C)

        def per_class(pred: torch.Tensor) -> np.ndarray:
            return (torch.bincount(y, weights=(pred == y).double(), minlength=C) / counts.clamp(min=1)).numpy()

        return AblationResult(
            info=run.info(), block=block, expert=params.expert, labels=tuple(spec.input.labels), counts=counts.numpy(),
            accuracy_before=per_class(pb), accuracy_after=per_class(pa),
            overall_before=round(float((pb == y).double().mean()), 4), overall_after=round(float((pa == y).double().mean()), 4),
            rerouted=float((topk == params.expert).any(-1).double().mean()), changed=int((pb != pa).sum()))


# --------------------------------------------------------------------------- IG through the router


def path_points(method: str, n_steps: int) -> torch.Tensor:
    """The path fractions IG evaluates (captum's alphas for ``method``), plus both ends, sorted."""
    _, alphas = approximation_parameters(method)
    return torch.tensor(sorted({0.0, 1.0, *map(float, alphas(n_steps))}), dtype=torch.float64)


def path_switches(model, x: torch.Tensor, baselines: torch.Tensor, alphas: torch.Tensor,
                  blocks: tuple[int, ...] | None = None) -> torch.Tensor:
    """How many times the routing changes along each straight path from a baseline to x, (B,).

    x: (B, 1, 28, 28); baselines: (draws, B, 1, 28, 28). Counts, over consecutive path points,
    MoE layers (those in ``blocks``, default all) and tokens, each change of a token's set of
    chosen experts; summed over the baseline draws.
    """
    blocks = moe_blocks(model) if blocks is None else blocks
    a = alphas.to(x.device, x.dtype).view(-1, *[1] * (x.dim() - 1))  # (P, 1, 1, 1)
    counts = torch.zeros(x.shape[0], dtype=torch.long)
    with torch.no_grad():
        for base in baselines:
            for i in range(x.shape[0]):
                path = base[i] + a * (x[i] - base[i])  # (P, 1, 28, 28)
                out = model(path, output_routing=True)
                for r in out.routing:
                    if r.block in blocks:
                        chosen = r.topk.sort(-1).values  # (P, T, k)
                        counts[i] += int((chosen[1:] != chosen[:-1]).any(-1).sum())
    return counts


def switch_advice(n: int, previous: str) -> str:
    """The readout for a flagged IG whose path crossed routing switches: what failed and why."""
    return (f"Routing switched {n} time{'s' if n != 1 else ''} along the path: a top-k gate jumps where its "
            f"chosen experts change and the path integral misses the jump, so completeness can fail here and "
            f"more n_steps need not help. {previous}").strip()


def with_routing_switches(model, spec, result, params):
    """A class-logit IG result of a MoE model with ``routing_switches`` and, when flagged, the reason in its advice."""
    with analysis(model, spec, "integrated_gradients", params):
        x = torch.from_numpy(result.inputs).to(next(model.parameters()).device)
        base = _path_baselines(x, params, result)
        n = path_switches(model, x, base, path_points(params.method, params.n_steps))
    advice = tuple(switch_advice(int(k), a) if f and k > 0 else a for k, f, a in zip(n, result.flagged, result.advice))
    return dataclasses.replace(result, routing_switches=n.numpy(), advice=advice)


def _path_baselines(x: torch.Tensor, p, result=None) -> torch.Tensor:
    """The baselines IG integrated from, (draws, B, 1, 28, 28); a custom one is read back from the result."""
    if p.baseline == "custom":
        return torch.from_numpy(result.baselines).to(x.device).unsqueeze(0)
    return make_baselines(x, p.baseline, draws=p.baseline_draws, sigma=p.blur_sigma, seed=p.seed)


def gate_attribution(model, spec, inputs: Inputs, params: GateIGParams = GateIGParams()) -> GateAttributionResult:
    """Integrated Gradients of a gate logit (x . W_g)_e of one token: which pixels sent the patch to expert e.

    Completeness (sum of attributions = F(x) - F(baseline)) holds when the function is smooth on
    the path; the gate logit of a later MoE layer depends on earlier layers' top-k routing, which
    can switch along the path: ``routing_switches`` counts those switches and the advice names them.
    Paper: https://arxiv.org/abs/1703.01365 (IG), https://arxiv.org/abs/1701.06538 (the gate).
    """
    with analysis(model, spec, "gate_attribution", params) as run:
        x = image_batch(inputs, spec, run.device)
        block = resolve_block(model, params.block)
        if params.expert >= 0:
            _check_expert(model, params.expert)
        layer = moe_blocks(model).index(block)
        _, layers = _routed(model, x)
        gates, topk, _ = layers[layer]  # (B, T, E), (B, T, k)
        experts, tokens = _pick(gates, params.expert, params.token)
        base = _path_baselines(x, params)
        k, B = base.shape[:2]
        xs, bs, ts = x.repeat(k, 1, 1, 1), base.flatten(0, 1), experts.repeat(k)
        ig = IntegratedGradients(lambda z, tok: model.gate_logits(z, block)[torch.arange(len(z)), tok])
        attr = torch.cat([ig.attribute(xs[i:i + 1], bs[i:i + 1], target=ts[i:i + 1], n_steps=params.n_steps,
                                       method=params.method, internal_batch_size=params.n_steps,
                                       additional_forward_args=(tokens.repeat(k)[i:i + 1],)) for i in range(len(xs))])
        if params.method == "riemann_trapezoid":
            attr = attr * trapezoid_scale(params.n_steps)
        attr = attr.view(k, B, *x.shape[1:]).mean(0)
        with torch.no_grad():
            fx = model.gate_logits(x, block)[torch.arange(B), tokens].gather(1, experts[:, None])[:, 0].double()
            fb = model.gate_logits(bs, block)[torch.arange(len(bs)), tokens.repeat(k)].gather(
                1, ts[:, None])[:, 0].double().view(k, B).mean(0)
        delta = convergence_delta(attr, fx, fb)
        rel, flagged = completeness(fx.cpu(), fb.cpu(), delta.cpu())
        earlier = tuple(b for b in moe_blocks(model) if b < block)
        switches = path_switches(model, x, base, path_points(params.method, params.n_steps), earlier) if earlier \
            else torch.zeros(B, dtype=torch.long)
        advice = tuple((switch_advice(int(s), completeness_advice(float(r), params)) if s > 0
                        else completeness_advice(float(r), params)) if fl else ""
                       for r, fl, s in zip(rel, flagged, switches))
        return GateAttributionResult(
            info=run.info(), inputs=_np(x), baselines=_np(base.mean(0)), attributions=_np(attr), block=block,
            experts=_np(experts, np.int64), tokens=_np(tokens, np.int64), chosen=_np(topk[torch.arange(B), tokens], np.int64),
            gate_weight=_np(gates[torch.arange(B), tokens, experts]), f_x=_np(fx, np.float64),
            f_baseline=_np(fb, np.float64), delta=_np(delta, np.float64), rel_error=_np(rel, np.float64),
            flagged=flagged.numpy(), routing_switches=switches.numpy(), advice=advice)


def _pick(gates: torch.Tensor, expert: int, token: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(experts (B,), tokens (B,)) to explain: as given, or resolved from the gates (B, T, E) when -1."""
    B, dev = gates.shape[0], gates.device
    if token >= 0 and expert >= 0:
        return torch.full((B,), expert, device=dev), torch.full((B,), token, device=dev)
    if token >= 0:  # the token's first choice
        return gates[:, token].argmax(-1), torch.full((B,), token, device=dev)
    patches = gates[:, 1:]  # (B, 49, E): -1 picks a patch, never CLS
    if expert >= 0:
        return torch.full((B,), expert, device=dev), patches[..., expert].argmax(-1) + 1
    flat = patches.reshape(B, -1).argmax(-1)  # the strongest gate of any patch and expert
    return flat % gates.shape[-1], flat // gates.shape[-1] + 1
