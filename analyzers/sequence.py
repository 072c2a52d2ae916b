"""Sequence-to-sequence analyses: alignment, step-by-step decoding and per-output-token attribution.

For the G2P models (``model_zoo.g2p``): ``sequence_alignment`` decodes a word greedily (online,
hard monotonic attention for ``g2p-monotonic``) and returns the alignment matrix (output tokens x
input characters), the training-time expected alignment beside it, each step's K likeliest tokens
and the attention entropy per step. ``sequence_attribution`` explains every output token over
the input characters with captum (Integrated Gradients with its completeness readout per step,
Input x Gradient, Occlusion), the way inseq does for generated tokens.

What is explained: token i's log-probability, log p(y_i | y_<i, x), as a function of the
character embeddings, the decoded output prefix held fixed (teacher forcing). For monotonic
attention the hard alignment the model chose on the word is held fixed too (its selection is a
step function with no gradient), so along the path the function is the test-time decoder's own
and completeness holds. The baseline is every character embedding zero (the padding character's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients, Occlusion

from .attribution_params import IG_METHODS, IG_PAPER
from .completeness import completeness, convergence_delta
from .params import ParamError, Params, param
from .run import analysis
from .sequence_results import SequenceAttributionResult, SequenceResult
from .spec import Inputs

RAFFEL_PAPER = ("Raffel, Luong, Liu, Weiss & Eck 2017, Online and Linear-Time Attention by Enforcing Monotonic "
                "Alignments, https://arxiv.org/abs/1704.00784")
SEQ_METHODS = ("integrated_gradients", "input_x_gradient", "occlusion")
TARGET = "log p(emitted token | output prefix, word)"


@dataclass(frozen=True)
class SequenceParams(Params):
    """Greedy decoding of one word: the alignment, the expected alignment, candidates and entropy per step."""

    top_k: int = param(5, min=1, max=10, help="Candidates shown per decoding step")


@dataclass(frozen=True)
class SequenceAttributionParams(Params):
    """Attribution of every output token over the input characters."""

    attribution: str = param("integrated_gradients", choices=SEQ_METHODS, help="Attribution method")
    n_steps: int = param(64, min=2, max=1024, help="Steps of the Integrated Gradients path integral")
    method: str = param("gausslegendre", choices=IG_METHODS, help="Quadrature rule for the path integral")
    internal_batch_size: int = param(64, min=1, max=1024, help="Path points per forward pass")

    def cost_factors(self) -> dict[str, int]:
        return {"n_steps": self.n_steps} if self.attribution == "integrated_gradients" else {}


def _word(model, inputs: Inputs) -> tuple[str, list[int]]:
    from model_zoo.g2p import G2PInputError, encode_word

    words = [inputs] if isinstance(inputs, str) else list(inputs or [])
    if len(words) != 1 or not isinstance(words[0], str):
        raise ParamError("a sequence model reads one word at a time, e.g. text:zooscope")
    try:
        return words[0].strip().lower(), encode_word(words[0])
    except G2PInputError as e:
        raise ParamError(str(e)) from None


def _names(ids) -> tuple[str, ...]:
    from model_zoo.g2p import PHONES
    return tuple(PHONES[i] for i in ids)


def _entropy(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy (nats) of each row renormalised to sum 1, and each row's mass; 0 for an empty row."""
    mass = rows.sum(-1)
    p = rows / mass.clamp(min=1e-12).unsqueeze(-1)
    ent = -(p * torch.log(p.clamp(min=1e-12))).sum(-1)
    return torch.where(mass > 1e-9, ent, torch.zeros_like(ent)), mass


def _teacher(model, chars: list[int], phones: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from model_zoo.g2p import BOS
    device = model.s0.device
    x = torch.tensor([chars], device=device)
    y_in = torch.tensor([[BOS] + phones[:-1]], device=device)
    return x, y_in, torch.tensor(phones, device=device)


def sequence_alignment(model, spec, inputs: Inputs, params: SequenceParams = SequenceParams()) -> SequenceResult:
    """Decode one word step by step: output tokens, alignment (hard or soft), expected alignment, entropy per step.

    Paper: https://arxiv.org/abs/1704.00784
    """
    word, chars = _word(model, inputs)
    with analysis(model, spec, "sequence_alignment", params) as run, torch.no_grad():
        out = model.decode(chars)
        T = len(chars)
        if out.phones and model.monotonic:
            x, y_in, _ = _teacher(model, chars, out.phones)
            expected = model.teacher_forced(model.embed(x), (x != 0).float(), y_in)[1][0].cpu()
        else:
            expected = out.alignment.clone()
        positions = (out.positions if model.monotonic
                     else out.alignment.argmax(-1).tolist() if out.phones else [])
        ent, mass = _entropy(expected if model.monotonic else out.alignment)
        k = min(params.top_k, out.probs.shape[-1])
        top = out.probs.topk(k, -1) if out.phones else None
        from model_zoo.g2p import CHARS
        return SequenceResult(
            info=run.info(), word=word, attention=model.cfg.attention, chars=tuple(CHARS[c] for c in chars),
            outputs=_names(out.phones), alignment=out.alignment.numpy().astype(np.float32).reshape(-1, T),
            expected=expected.numpy().astype(np.float32).reshape(-1, T),
            positions=np.asarray(positions, dtype=np.int64),
            entropy=ent.numpy().astype(np.float32), mass=mass.numpy().astype(np.float32),
            top_tokens=np.array([list(_names(r)) for r in top.indices.tolist()] if top is not None
                                else np.zeros((0, k)), dtype="<U8").reshape(-1, k),
            top_probs=(top.values.numpy() if top is not None else np.zeros((0, k))).astype(np.float32),
            energy_evaluations=int(out.energy_evaluations),
        )


def sequence_attribution(model, spec, inputs: Inputs,
                         params: SequenceAttributionParams = SequenceAttributionParams()) -> SequenceAttributionResult:
    """Attribute every output token over the input characters (IG with completeness per step, or another method).

    Paper: https://arxiv.org/abs/1703.01365
    """
    word, chars = _word(model, inputs)
    with analysis(model, spec, "sequence_attribution", params) as run:
        with torch.no_grad():
            out = model.decode(chars)
        if not out.phones:
            raise ParamError(f"{spec.name} says nothing for {word!r} (it emits the end token first); "
                             "there is no output token to explain")
        x, y_in, y = _teacher(model, chars, out.phones)
        mask = (x != 0).float()
        U = len(out.phones)
        fixed = out.alignment.to(x.device).unsqueeze(0) if model.monotonic else None

        def f(e: torch.Tensor) -> torch.Tensor:  # (N, T, E) embeddings -> (N, U) log-probs of the emitted tokens
            n = e.shape[0]
            logits = model.teacher_forced(e, mask.expand(n, -1), y_in.expand(n, -1),
                                          fixed=None if fixed is None else fixed.expand(n, -1, -1))[0]
            return torch.log_softmax(logits, -1).gather(-1, y.view(1, U, 1).expand(n, -1, -1)).squeeze(-1)

        e = model.embed(x).detach()
        base = torch.zeros_like(e)
        with torch.no_grad():
            f_x, f_b = f(e)[0], f(base)[0]
        rows = []
        for i in range(U):
            rows.append(_attribute(f, e, base, i, params).detach()[0].sum(-1))  # (T,)
        attr = torch.stack(rows)  # (U, T)
        if params.attribution == "occlusion":
            delta = torch.full((U,), float("nan"), dtype=torch.float64)
            rel = delta.clone()
        else:
            delta = convergence_delta(attr, f_x, f_b)
            rel = completeness(f_x.double(), f_b.double(), delta)[0]
        from model_zoo.g2p import CHARS
        return SequenceAttributionResult(
            info=run.info(), word=word, attention=model.cfg.attention, method=params.attribution,
            chars=tuple(CHARS[c] for c in chars), outputs=_names(out.phones),
            attributions=attr.cpu().numpy().astype(np.float32), f_x=f_x.cpu().numpy().astype(np.float32),
            f_baseline=f_b.cpu().numpy().astype(np.float32), delta=delta.cpu().numpy(), rel_error=rel.cpu().numpy(),
            target=TARGET,
        )


def _attribute(f, e: torch.Tensor, base: torch.Tensor, i: int, p: SequenceAttributionParams) -> torch.Tensor:
    if p.attribution == "integrated_gradients":
        return IntegratedGradients(f).attribute(e, baselines=base, target=i, n_steps=p.n_steps, method=p.method,
                                                internal_batch_size=p.internal_batch_size)
    if p.attribution == "input_x_gradient":  # gradient x (input - 0): the one-step linear readout
        return InputXGradient(f).attribute(e.clone().requires_grad_(True), target=i)
    return Occlusion(f).attribute(e, sliding_window_shapes=(1, e.shape[-1]), baselines=0.0, target=i)


__all__ = ["IG_PAPER", "RAFFEL_PAPER", "SequenceAttributionParams", "SequenceParams", "sequence_alignment",
           "sequence_attribution"]
